package tcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"meshd.dev/meshd/transports/link"
)

// maxWriteBuf is the largest write buffer a link keeps between writes.
const maxWriteBuf = 256 << 10

// inQueue is how many received frames wait for Recv before the reader
// stops reading the socket (and TCP flow control stops the peer).
const inQueue = 16

// conn is one authenticated TCP link; it implements link.Link.
type conn struct {
	c    net.Conn
	info link.Info
	lim  limits
	send *sealer // writer goroutine only
	wbuf []byte  // writer goroutine only: the records of one write
	recv *opener // reader goroutine only

	in   chan []byte
	done chan struct{}
	once sync.Once
	err  atomic.Pointer[error]
	bye  atomic.Bool // send a close record before closing

	mu      sync.Mutex
	queue   [][]byte
	queued  int           // bytes in queue
	writing int           // bytes the writer took and is writing
	room    chan struct{} // closed (and replaced) when the writer frees queue space
	wake    chan struct{} // cap 1: there is something to write

	framesIn, framesOut, bytesIn, bytesOut atomic.Uint64
	stopped                                sync.WaitGroup
}

// limits are the timing and size limits of a link.
type limits struct {
	keepalive, deadAfter, writeTimeout time.Duration
	maxPending                         int
}

func newConn(c net.Conn, s *session, info link.Info, lim limits) *conn {
	k := &conn{
		c: c, info: info, lim: lim, send: s.send, recv: s.recv,
		in: make(chan []byte, inQueue), done: make(chan struct{}),
		room: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	k.stopped.Add(2)
	go k.readLoop()
	go k.writeLoop()
	return k
}

func (k *conn) Info() link.Info { return k.info }

// Send queues frame. It waits while the frames queued and being written
// hold maxPending bytes (a frame larger than what is free still goes
// through when nothing is pending), so a peer that stops reading holds at
// most maxPending bytes of this node's memory until the write timeout
// takes the link down.
func (k *conn) Send(ctx context.Context, frame []byte) error {
	if err := link.CheckFrame(frame, k.info.MTU); err != nil {
		return err
	}
	b := append([]byte(nil), frame...)
	for {
		if err := k.closedErr(); err != nil {
			return err
		}
		k.mu.Lock()
		pending := k.queued + k.writing
		if pending == 0 || pending+len(b) <= k.lim.maxPending {
			k.queue = append(k.queue, b)
			k.queued += len(b)
			k.mu.Unlock()
			select {
			case k.wake <- struct{}{}:
			default:
			}
			return nil
		}
		room := k.room
		k.mu.Unlock()
		select {
		case <-room:
		case <-k.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (k *conn) Recv(ctx context.Context) (link.Frame, error) {
	select {
	case b := <-k.in:
		return link.Frame{Data: b}, nil
	default:
	}
	select {
	case b := <-k.in:
		return link.Frame{Data: b}, nil
	case <-k.done:
		// The reader has stopped putting frames in; hand out what it did.
		select {
		case b := <-k.in:
			return link.Frame{Data: b}, nil
		default:
			return link.Frame{}, k.closedErr()
		}
	case <-ctx.Done():
		return link.Frame{}, ctx.Err()
	}
}

func (k *conn) TxDone() <-chan int { return nil }

// Close takes the link down; with a nil reason the peer is told (a close
// record after what is queued, if the writer gets it out within a second).
func (k *conn) Close(reason error) error {
	if reason == nil {
		k.bye.Store(true)
		reason = link.ErrLocalClose
	}
	k.shutdown(reason)
	return nil
}

// shutdown records why the link ends and stops it. The writer closes the
// socket (after the close record, if any); a write stuck on a peer that
// does not read is cut off by the deadline set here.
func (k *conn) shutdown(err error) {
	k.once.Do(func() {
		k.err.Store(&err)
		close(k.done)
		if k.bye.Load() {
			_ = k.c.SetWriteDeadline(time.Now().Add(closeGrace))
		} else {
			_ = k.c.Close()
		}
		_ = k.c.SetReadDeadline(time.Now()) // the reader stops now
	})
}

func (k *conn) Done() <-chan struct{} { return k.done }

func (k *conn) Err() error {
	if p := k.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (k *conn) closedErr() error {
	select {
	case <-k.done:
		return fmt.Errorf("%w: %w", link.ErrClosed, k.Err())
	default:
		return nil
	}
}

func (k *conn) Stats() link.Stats {
	k.mu.Lock()
	frames, bytes := len(k.queue), k.queued+k.writing
	k.mu.Unlock()
	return link.Stats{
		FramesIn: k.framesIn.Load(), FramesOut: k.framesOut.Load(),
		BytesIn: k.bytesIn.Load(), BytesOut: k.bytesOut.Load(),
		QueueFrames: frames, QueueBytes: bytes,
	}
}

// wait blocks until the reader and writer have returned.
func (k *conn) wait() { k.stopped.Wait() }

// keepaliveHook, if set (by tests, before links start), is called for
// every keepalive received.
var keepaliveHook func()

// readLoop reads records until the link ends. Any record proves the peer
// alive; nothing for deadAfter means it is gone.
func (k *conn) readLoop() {
	defer k.stopped.Done()
	// Buffered: a record costs one read system call or less, not two (the
	// handshake read exactly its records, so nothing is lost here).
	r := bufio.NewReaderSize(k.c, 64<<10)
	for {
		_ = k.c.SetReadDeadline(time.Now().Add(k.lim.deadAfter))
		typ, body, err := k.recv.readRecord(r)
		if err != nil {
			k.shutdown(readErr(err, k.lim.deadAfter))
			return
		}
		switch typ {
		case recData:
			if len(body) == 0 || len(body) > k.info.MTU {
				k.shutdown(fmt.Errorf("%w: frame of %d bytes (1..%d)", ErrBadRecord, len(body), k.info.MTU))
				return
			}
			k.framesIn.Add(1)
			k.bytesIn.Add(uint64(len(body)))
			select {
			case k.in <- append([]byte(nil), body...):
			case <-k.done:
				return
			}
		case recKeepalive:
			if keepaliveHook != nil {
				keepaliveHook()
			}
		case recClose:
			k.shutdown(fmt.Errorf("%w: %q", link.ErrPeerClosed, truncate(body, 200)))
			return
		default:
			k.shutdown(fmt.Errorf("%w: record type %d", ErrBadRecord, typ))
			return
		}
	}
}

// readErr says what a read error means.
func readErr(err error, deadAfter time.Duration) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%w: nothing heard for %v", ErrDeadPeer, deadAfter)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("tcp: the peer's connection ended without a close record: %w", err)
	}
	return err
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// writeLoop writes what Send queued, and a keepalive when the link was
// quiet for the keepalive interval.
func (k *conn) writeLoop() {
	defer k.stopped.Done()
	defer k.c.Close()
	t := time.NewTimer(k.lim.keepalive)
	defer t.Stop()
	for {
		select {
		case <-k.wake:
		case <-t.C:
			k.wbuf = k.send.seal(k.wbuf[:0], recKeepalive, nil)
			if !k.write(k.wbuf) {
				return
			}
			t.Reset(k.lim.keepalive)
			continue
		case <-k.done:
			if k.bye.Load() {
				k.flush()
				k.wbuf = k.send.seal(k.wbuf[:0], recClose, []byte("closed"))
				k.write(k.wbuf)
			}
			return
		}
		if !k.flush() {
			return
		}
		t.Reset(k.lim.keepalive)
	}
}

// flush writes every queued frame in one write.
func (k *conn) flush() bool {
	k.mu.Lock()
	q, n := k.queue, k.queued
	k.queue, k.queued, k.writing = nil, 0, n
	k.mu.Unlock()
	if len(q) == 0 {
		return true
	}
	buf := k.wbuf[:0]
	for _, f := range q {
		buf = k.send.seal(buf, recData, f)
	}
	if cap(buf) <= maxWriteBuf {
		k.wbuf = buf // kept for the next batch, unless a burst made it huge
	}
	ok := k.write(buf)
	k.mu.Lock()
	k.writing = 0
	close(k.room) // wake the senders waiting for room
	k.room = make(chan struct{})
	k.mu.Unlock()
	if ok {
		k.framesOut.Add(uint64(len(q)))
		k.bytesOut.Add(uint64(n))
	}
	return ok
}

// closeGrace is how long an orderly close tries to write what is queued
// and the close record.
const closeGrace = time.Second

func (k *conn) write(b []byte) bool {
	timeout := k.lim.writeTimeout
	if k.closedErr() != nil {
		// Closing: keep to the close's deadline, or a peer that stopped
		// reading holds the goroutines and socket for WriteTimeout.
		timeout = min(timeout, closeGrace)
	}
	_ = k.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := k.c.Write(b); err != nil {
		k.shutdown(fmt.Errorf("tcp: writing: %w", err))
		return false
	}
	return true
}
