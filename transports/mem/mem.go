// Package mem is the in-memory link: two connected link.Link ends in one
// process, for tests of the daemon and of the link contract itself. It
// keeps the contract's promises (order, MTU, backpressure through a bounded
// queue, close from either side, an optional transmit window) without any
// I/O.
package mem

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/link"
)

// Config describes one end of a pipe.
type Config struct {
	// Info is what the end reports; Info.MTU defaults to 64 KiB and
	// Info.Kind to link.KindTCP.
	Info link.Info
	// Queue is how many frames the end's outgoing queue holds before Send
	// waits (default 16).
	Queue int
}

// Pipe returns two connected ends: a frame sent on one is received on the
// other. a's Peer is bID and b's is aID (either may be nil for a shared
// medium test).
func Pipe(a, b Config, aID, bID *protocol.PublicIdentity) (link.Link, link.Link) {
	ea, eb := newEnd(a), newEnd(b)
	ea.info.Peer, eb.info.Peer = bID, aID
	ea.peer, eb.peer = eb, ea
	done := make(chan struct{})
	ea.done, eb.done = done, done
	once := &sync.Once{}
	ea.once, eb.once = once, once
	return ea, eb
}

type end struct {
	info   link.Info
	peer   *end
	queue  chan []byte // frames this end sent, read by peer.Recv
	window chan struct{}
	txDone chan int
	done   chan struct{} // shared by both ends
	once   *sync.Once    // shared: the first Close decides both Errs
	mu     sync.Mutex
	err    error

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
	queueBytes                             atomic.Int64
}

func newEnd(c Config) *end {
	if c.Info.MTU == 0 {
		c.Info.MTU = 64 << 10
	}
	if c.Info.Kind == 0 {
		c.Info.Kind = link.KindTCP
	}
	if c.Queue <= 0 {
		c.Queue = 16
	}
	e := &end{info: c.Info, queue: make(chan []byte, c.Queue)}
	if c.Info.Window > 0 {
		e.window = make(chan struct{}, c.Info.Window)
		e.txDone = make(chan int, 1)
	}
	return e
}

func (e *end) Info() link.Info { return e.info }

func (e *end) Send(ctx context.Context, frame []byte) error {
	if err := link.CheckFrame(frame, e.info.MTU); err != nil {
		return err
	}
	if err := e.closedErr(); err != nil {
		return err
	}
	if e.window != nil {
		select {
		case e.window <- struct{}{}:
		case <-e.done:
			return e.closedErr()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := append([]byte(nil), frame...)
	select {
	case e.queue <- b:
		e.queueBytes.Add(int64(len(b)))
		return nil
	case <-e.done:
		return e.closedErr()
	case <-ctx.Done():
		if e.window != nil {
			<-e.window
		}
		return ctx.Err()
	}
}

func (e *end) Recv(ctx context.Context) (link.Frame, error) {
	p := e.peer
	select {
	case b := <-p.queue: // frames sent before a close are still read
		return e.took(b), nil
	default:
	}
	select {
	case b := <-p.queue:
		return e.took(b), nil
	case <-e.done:
		select {
		case b := <-p.queue:
			return e.took(b), nil
		default:
			return link.Frame{}, e.closedErr()
		}
	case <-ctx.Done():
		return link.Frame{}, ctx.Err()
	}
}

// took counts a frame the peer sent and this end received, and frees the
// peer's window slot: in memory, "on the air" is "taken".
func (e *end) took(b []byte) link.Frame {
	p := e.peer
	p.queueBytes.Add(-int64(len(b)))
	p.framesOut.Add(1)
	p.bytesOut.Add(uint64(len(b)))
	e.framesIn.Add(1)
	e.bytesIn.Add(uint64(len(b)))
	if p.window != nil {
		<-p.window
		p.reportDone()
	}
	return link.Frame{Data: b}
}

// reportDone adds one frame to the TxDone report waiting in the channel
// (capacity 1), or puts a new one in: it never blocks, however late the
// reader of TxDone is, and no count is lost. Only the peer's Recv calls it,
// so no other goroutine fills the channel in between.
func (e *end) reportDone() {
	select {
	case k := <-e.txDone:
		e.txDone <- k + 1
	default:
		e.txDone <- 1
	}
}

func (e *end) TxDone() <-chan int { return e.txDone }

func (e *end) Close(reason error) error {
	e.once.Do(func() {
		if reason == nil {
			reason = link.ErrLocalClose
		}
		e.setErr(reason)
		e.peer.setErr(link.ErrPeerClosed)
		close(e.done)
	})
	return nil
}

func (e *end) setErr(err error) {
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
}

func (e *end) Done() <-chan struct{} { return e.done }

func (e *end) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// closedErr is nil while the link is up, else ErrClosed with the reason.
func (e *end) closedErr() error {
	select {
	case <-e.done:
		return fmt.Errorf("%w: %w", link.ErrClosed, e.Err())
	default:
		return nil
	}
}

func (e *end) Stats() link.Stats {
	return link.Stats{
		FramesIn: e.framesIn.Load(), FramesOut: e.framesOut.Load(),
		BytesIn: e.bytesIn.Load(), BytesOut: e.bytesOut.Load(),
		QueueFrames: len(e.queue), QueueBytes: int(e.queueBytes.Load()),
	}
}
