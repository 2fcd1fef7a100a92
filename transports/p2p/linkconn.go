package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	contract "meshd.dev/meshd/transports/link"
)

// IPLinkMTU is the MTU a libp2p link reports through the link contract:
// the routing engine's MTU for IP links (the wire takes up to
// MaxFrameSize).
const IPLinkMTU = 64 << 10

// Links wraps the host's meshd links in the link contract
// (transports/link): it reads events (the host's Events channel, which it
// then owns) and delivers a contract.Link for every LinkUp, fed with that
// peer's Frames and taken down by its LinkDown. It implements
// contract.Transport. The daemon reads Events itself; Links is how libp2p
// links run the link conformance suite and how a program that wants only
// the contract uses the host. It reads events in order, so a link whose
// Recv is not called stops the frames of every link (and so bounds what
// the peers can push).
type Links struct {
	h     *Host
	out   chan contract.Link
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	conns map[peer.ID]*ipLink // read goroutine only
}

// NewLinks starts wrapping h's links; events is h.Events().
func NewLinks(h *Host, events <-chan Event) *Links {
	ls := &Links{h: h, out: make(chan contract.Link), stop: make(chan struct{}), done: make(chan struct{}), conns: map[peer.ID]*ipLink{}}
	go ls.run(events)
	return ls
}

// Links delivers each link when it is up; closed after Close or when the
// host's events end.
func (ls *Links) Links() <-chan contract.Link { return ls.out }

// Close stops the wrapper (not the host) and takes its links down.
func (ls *Links) Close() error {
	ls.once.Do(func() { close(ls.stop) })
	<-ls.done
	return nil
}

func (ls *Links) run(events <-chan Event) {
	defer close(ls.done)
	defer close(ls.out)
	defer func() {
		for _, l := range ls.conns {
			l.down(ErrClosed)
		}
	}()
	for {
		var ev Event
		var ok bool
		select {
		case ev, ok = <-events:
		case <-ls.stop:
			return
		}
		if !ok {
			return
		}
		switch ev := ev.(type) {
		case LinkUp:
			if old := ls.conns[ev.Peer]; old != nil {
				old.down(errReplaced)
			}
			l := &ipLink{h: ls.h, peer: ev.Peer, in: make(chan []byte, 16), done: make(chan struct{}),
				info: contract.Info{Kind: contract.KindIP, Name: ev.Peer.String(), MTU: IPLinkMTU, Peer: ev.Identity, Outbound: ev.Outbound}}
			ls.conns[ev.Peer] = l
			select {
			case ls.out <- l:
			case <-ls.stop:
				return
			}
		case Frame:
			l := ls.conns[ev.Peer]
			if l == nil {
				continue
			}
			l.framesIn.Add(1)
			l.bytesIn.Add(uint64(len(ev.Data)))
			select {
			case l.in <- ev.Data:
			case <-l.done:
			case <-ls.stop:
				return
			}
		case LinkDown:
			if l := ls.conns[ev.Peer]; l != nil {
				delete(ls.conns, ev.Peer)
				err := ev.Err
				if err == nil {
					err = contract.ErrPeerClosed
				}
				l.down(err)
			}
		}
	}
}

// ipLink is one libp2p meshd link seen through the contract.
type ipLink struct {
	h    *Host
	peer peer.ID
	info contract.Info
	in   chan []byte
	done chan struct{}
	once sync.Once
	err  atomic.Pointer[error]

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
}

func (l *ipLink) down(err error) {
	l.once.Do(func() {
		l.err.Store(&err)
		close(l.done)
	})
}

func (l *ipLink) Info() contract.Info { return l.info }

func (l *ipLink) closedErr() error {
	select {
	case <-l.done:
		return fmt.Errorf("%w: %w", contract.ErrClosed, l.Err())
	default:
		return nil
	}
}

// Send queues frame on the host's link to the peer. (Between the peer's
// LinkDown and the wrapper seeing it, a frame may go to a newer link to
// the same peer: that is the same neighbour, authenticated again.)
func (l *ipLink) Send(ctx context.Context, frame []byte) error {
	if err := contract.CheckFrame(frame, l.info.MTU); err != nil {
		return err
	}
	if err := l.closedErr(); err != nil {
		return err
	}
	// The host's Send returns when its link goes down, which Close
	// brings about.
	err := l.h.Send(ctx, l.peer, frame)
	switch {
	case err == nil:
		l.framesOut.Add(1)
		l.bytesOut.Add(uint64(len(frame)))
		return nil
	case errors.Is(err, ErrNoLink) || errors.Is(err, ErrClosed):
		return fmt.Errorf("%w: %w", contract.ErrClosed, err)
	}
	if cerr := l.closedErr(); cerr != nil {
		return cerr
	}
	return err
}

func (l *ipLink) Recv(ctx context.Context) (contract.Frame, error) {
	select {
	case b := <-l.in:
		return contract.Frame{Data: b}, nil
	default:
	}
	select {
	case b := <-l.in:
		return contract.Frame{Data: b}, nil
	case <-l.done:
		select {
		case b := <-l.in:
			return contract.Frame{Data: b}, nil
		default:
			return contract.Frame{}, l.closedErr()
		}
	case <-ctx.Done():
		return contract.Frame{}, ctx.Err()
	}
}

func (l *ipLink) TxDone() <-chan int { return nil }

// Close disconnects the peer (every connection to it), which ends the
// link on both sides.
func (l *ipLink) Close(reason error) error {
	if reason == nil {
		reason = contract.ErrLocalClose
	}
	select {
	case <-l.done:
		return nil
	default:
	}
	l.down(reason)
	_ = l.h.Disconnect(l.peer)
	return nil
}

func (l *ipLink) Done() <-chan struct{} { return l.done }

func (l *ipLink) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats counts what went through the wrapper, and the frames waiting in
// the host's queue for the peer (their bytes are not counted).
func (l *ipLink) Stats() contract.Stats {
	return contract.Stats{FramesIn: l.framesIn.Load(), FramesOut: l.framesOut.Load(), BytesIn: l.bytesIn.Load(), BytesOut: l.bytesOut.Load(),
		QueueFrames: l.h.LinkQueue(l.peer)}
}

// LinkQueue is how many frames wait in the send queue of the link to p
// (0 without a link).
func (h *Host) LinkQueue(p peer.ID) int {
	h.mu.Lock()
	l := h.links[p]
	h.mu.Unlock()
	if l == nil {
		return 0
	}
	return len(l.queue)
}

// LinkQueueBytes is how many bytes wait in the send queue of the link to
// p (0 without a link): the frames TrySend queued and the writer has not
// taken.
func (h *Host) LinkQueueBytes(p peer.ID) int {
	h.mu.Lock()
	l := h.links[p]
	h.mu.Unlock()
	if l == nil {
		return 0
	}
	return int(l.bytes.Load())
}
