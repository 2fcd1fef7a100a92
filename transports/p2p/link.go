package p2p

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
)

// link is one meshd link: the single stream to a peer that carries frames
// both ways after the hello exchange.
type link struct {
	peer     peer.ID
	id       *protocol.PublicIdentity
	s        network.Stream
	outbound bool

	queue      chan []byte
	watch      atomic.Bool   // WatchRoom asked: signal Host.room at the writer's next take
	bytes      atomic.Int64  // bytes queued (TrySend's bound, sendQueueBytes)
	queued     atomic.Int64  // frames queued, taken off after bytes (WatchRoom)
	closed     chan struct{} // closed by shutdown: the link is going down
	writerDone chan struct{} // closed when the writer goroutine returned
	done       chan struct{} // closed after LinkDown and removal from Host.links

	once sync.Once
	err  error // why the link went down; read after closed
}

// shutdown ends the link: the stream is reset, which stops the reader; the
// writer sees closed.
func (l *link) shutdown(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.closed)
		_ = l.s.Reset()
	})
}

func (l *link) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

// lessPeer orders peer IDs by their bytes. The smaller of two peers opens
// the link stream between them.
func lessPeer(a, b peer.ID) bool { return string(a) < string(b) }

// opensTo reports whether this host is the one to open the link to p.
func (h *Host) opensTo(p peer.ID) bool { return lessPeer(h.self, p) }

// handleStream accepts an inbound link stream.
func (h *Host) handleStream(s network.Stream) {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		_ = s.Reset()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	if g := h.cfg.Guard; g != nil && !g.AllowPeer(s.Conn().RemotePeer()) {
		// Denied or cooling down: no handshake, no log line (the guard
		// counts them).
		_ = s.Reset()
		return
	}
	h.runLink(s, false, nil)
}

// openLink opens the link stream to p unless a link is up or being opened.
func (h *Host) openLink(p peer.ID) {
	direct := h.hasDirectConn(p)
	h.mu.Lock()
	if h.closing || h.dialing[p] {
		h.mu.Unlock()
		return
	}
	if l := h.links[p]; l != nil && !l.isClosed() && !needsUpgrade(l, direct) {
		h.mu.Unlock()
		return
	}
	h.dialing[p] = true
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		var once sync.Once
		settled := func() {
			once.Do(func() {
				h.mu.Lock()
				delete(h.dialing, p)
				h.mu.Unlock()
			})
		}
		defer settled()
		ctx, cancel := context.WithTimeout(h.ctx, h.cfg.Timeouts.Handshake)
		s, err := h.host.NewStream(linkStreamCtx(ctx), p, LinkProtocol)
		cancel()
		if err != nil {
			h.log.Debug("opening link stream failed", "peer", p, "err", err)
			return
		}
		h.runLink(s, true, settled)
	}()
}

// reopenLater opens the link stream to p again after the redial backoff
// of attempt (0.5-1 s, then doubling): a handshake that failed because the
// connection was dying fails again at once if retried at once.
func (h *Host) reopenLater(p peer.ID, attempt int) {
	d := h.redial.cfg.backoff(attempt, h.redial.cfg.Rand())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			h.openLink(p)
		case <-h.ctx.Done():
		}
	}()
}

// runLink runs one link stream from hello to LinkDown. registered is called
// once the stream is the peer's link or has failed before becoming it.
func (h *Host) runLink(s network.Stream, outbound bool, registered func()) {
	remote := s.Conn().RemotePeer()
	fail := func(err error) {
		if registered != nil {
			registered()
		}
		_ = s.Reset()
		// A peer breaking the protocol is worth a line; a stream that died
		// during the handshake (peer or host closing) is not.
		level := slog.LevelDebug
		if errors.Is(err, ErrBadHello) || errors.Is(err, ErrIdentityMismatch) || errors.Is(err, errWrongOpener) || errors.Is(err, errTooManyReplacements) {
			level = slog.LevelInfo
		}
		if level == slog.LevelInfo && h.cfg.Guard != nil && !h.cfg.Guard.HandshakeFailed(remote, err) {
			level = slog.LevelDebug // a repeat offender: the guard logs it once per interval
		}
		h.log.Log(context.Background(), level, "meshd link handshake failed", "peer", remote, "outbound", outbound, "err", err)
		// A handshake that failed for a passing reason (the stream ran on a
		// connection that was dying) is retried while a connection stays,
		// as often as a link that ended is reopened.
		if outbound && level == slog.LevelDebug && !errors.Is(err, ErrClosed) {
			h.mu.Lock()
			attempt := h.reopens[remote]
			retry := !h.closing && attempt < maxReopens && h.links[remote] == nil &&
				h.connected(remote)
			if retry {
				h.reopens[remote]++
			}
			h.mu.Unlock()
			if retry {
				h.reopenLater(remote, attempt)
			}
		}
	}
	_ = s.SetDeadline(time.Now().Add(h.cfg.Timeouts.Handshake))
	hello, err := h.currentHello()
	if err != nil {
		fail(err)
		return
	}
	if _, err := s.Write(hello); err != nil {
		fail(fmt.Errorf("p2p: writing hello: %w", err))
		return
	}
	id, err := readHello(s, remote, h.now())
	if err != nil {
		fail(err)
		return
	}
	opener, other := remote, h.self
	if outbound {
		opener, other = h.self, remote
	}
	if !lessPeer(opener, other) {
		fail(errWrongOpener)
		return
	}
	if g := h.cfg.Guard; g != nil {
		if err := g.AllowLink(remote, id.Address()); err != nil {
			fail(fmt.Errorf("%w: %w", ErrRefusedPeer, err))
			// Its connections go too: kept, they would still carry
			// gossip and the DHT for a peer the guard refused.
			go h.host.Network().ClosePeer(remote)
			return
		}
	}
	_ = s.SetDeadline(time.Time{})

	l := &link{
		peer:       remote,
		id:         id,
		s:          s,
		outbound:   outbound,
		queue:      make(chan []byte, sendQueueLen),
		closed:     make(chan struct{}),
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	// Register: a link still in the map (going down, or stale because the
	// peer saw its connection die first) gives way to this newer stream.
	// It leaves only after its LinkDown, so events for a peer stay ordered.
	for {
		h.mu.Lock()
		if h.closing {
			h.mu.Unlock()
			fail(ErrClosed)
			return
		}
		old := h.links[remote]
		if old == nil {
			h.links[remote] = l
			h.signalLinkChangeLocked()
			h.mu.Unlock()
			break
		}
		if keepsDirect(old, s) {
			h.mu.Unlock()
			fail(errDirectLinkUp)
			return
		}
		if !h.allowReplacementLocked(remote) {
			h.mu.Unlock()
			fail(errTooManyReplacements)
			return
		}
		h.mu.Unlock()
		old.shutdown(errReplaced)
		select {
		case <-old.done:
		case <-h.ctx.Done():
			fail(ErrClosed)
			return
		}
	}
	if registered != nil {
		registered()
	}
	h.host.ConnManager().TagPeer(remote, linkTag, linkTagValue)
	h.wg.Add(2) // safe: this goroutine is counted, so Wait has not returned
	go h.writeLoop(l)
	go h.keepalive(l)
	h.waitIdentify(s.Conn())
	addrs := h.peerAddrs(remote)
	h.redial.linkUp(remote, addrs, time.Now())
	h.rememberCircuit(l)

	h.log.Debug("meshd link up", "peer", remote, "address", id.Address(), "outbound", outbound)
	up := h.emit(LinkUp{Peer: remote, Address: id.Address(), Compact: id.Compact(), Identity: id, Outbound: outbound, Addrs: addrs, HopAcks: h.peerHopAcks(remote)})
	if up {
		err = h.readLoop(l)
	} else {
		err = ErrClosed
	}
	l.shutdown(err)
	<-l.writerDone
	if errors.Is(l.err, io.EOF) {
		l.err = nil
	}
	if up { // a LinkDown only follows a LinkUp the reader got
		h.emit(LinkDown{Peer: remote, Address: id.Address(), Err: l.err})
	}
	h.mu.Lock()
	if h.links[remote] == l {
		delete(h.links, remote)
		// Untag while still holding the map: a newer link for the peer
		// registers (and tags) only after this, so its tag survives.
		h.host.ConnManager().UntagPeer(remote, linkTag)
	}
	attempt := h.reopens[remote]
	reopen := outbound && !h.closing && !errors.Is(l.err, errReplaced) && attempt < maxReopens &&
		h.connected(remote)
	if reopen {
		h.reopens[remote]++
	}
	h.mu.Unlock()
	close(l.done)
	h.redial.linkDown(remote, time.Now())
	h.log.Debug("meshd link down", "peer", remote, "err", l.err)
	if reopen {
		h.reopenLater(remote, attempt)
	}
}

// allowReplacementLocked records a replacement of remote's link and
// reports whether it is within maxReplacements per replaceWindow. h.mu is
// held.
func (h *Host) allowReplacementLocked(remote peer.ID) bool {
	now := time.Now()
	recent := slices.DeleteFunc(h.replaced[remote], func(t time.Time) bool { return now.Sub(t) > replaceWindow })
	if len(recent) >= maxReplacements {
		h.replaced[remote] = recent
		return false
	}
	h.replaced[remote] = append(recent, now)
	return true
}

// readLoop delivers frames until the stream fails or ends.
func (h *Host) readLoop(l *link) error {
	r := bufio.NewReader(l.s)
	for {
		b, err := readFrame(r)
		if err != nil {
			return err
		}
		if g := h.cfg.Guard; g != nil {
			err := g.Frame(l.peer, l.id.Address(), b)
			if errors.Is(err, ErrDropFrame) {
				continue
			}
			if err != nil {
				// An offender: its connections go, and the guard's
				// cool-down keeps it from coming straight back.
				go h.host.Network().ClosePeer(l.peer)
				return fmt.Errorf("%w: %w", ErrRefusedPeer, err)
			}
		}
		if !h.emit(Frame{Peer: l.peer, Address: l.id.Address(), Data: b}) {
			return ErrClosed
		}
	}
}

// writeLoop writes queued frames, batching what is queued into one flush.
func (h *Host) writeLoop(l *link) {
	defer h.wg.Done()
	defer close(l.writerDone)
	w := bufio.NewWriterSize(l.s, 64<<10)
	var hdr [binary.MaxVarintLen64]byte
	for {
		var f []byte
		select {
		case f = <-l.queue:
		case <-l.closed:
			return
		}
		h.took(l, f)
		_ = l.s.SetWriteDeadline(time.Now().Add(writeTimeout))
		// Write what is queued now (at most one queue's worth, so the
		// deadline covers a bounded amount), then flush once.
		for i := 1; ; i++ {
			n := binary.PutUvarint(hdr[:], uint64(len(f)))
			_, _ = w.Write(hdr[:n])
			_, _ = w.Write(f) // bufio keeps the first error for Flush
			if i == sendQueueLen {
				break
			}
			select {
			case f = <-l.queue:
				h.took(l, f)
				continue
			default:
			}
			break
		}
		if err := w.Flush(); err != nil {
			l.shutdown(fmt.Errorf("p2p: writing frames: %w", err))
			return
		}
	}
}

// Send queues one frame on the link to p and returns when it is queued (not
// delivered). It waits while the link's queue is full, until ctx ends or
// the link goes down; a peer that stops reading loses its link after
// writeTimeout, so Send never waits forever.
func (h *Host) Send(ctx context.Context, p peer.ID, frame []byte) error {
	err := checkFrameSize(uint64(len(frame)))
	if err != nil {
		return err
	}
	h.mu.Lock()
	l := h.links[p]
	closing := h.closing
	h.mu.Unlock()
	if closing {
		return ErrClosed
	}
	if l == nil || l.isClosed() {
		return fmt.Errorf("%w %s", ErrNoLink, p)
	}
	b := bytes.Clone(frame)
	l.bytes.Add(int64(len(b))) // before the writer can take it
	l.queued.Add(1)
	select {
	case l.queue <- b:
		return nil
	case <-l.closed:
		err = fmt.Errorf("%w %s (going down)", ErrNoLink, p)
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.queued.Add(-1)
	l.bytes.Add(-int64(len(b)))
	return err
}

// TrySend is Send without the wait: it queues frame on the link to p if
// the queue has room now and reports whether it did (false, nil: the
// queue is full, in frames or, for TrySend, in bytes: sendQueueBytes;
// the caller may wait with Send). It spares a caller that sends many
// frames a deadline per frame.
func (h *Host) TrySend(p peer.ID, frame []byte) (bool, error) {
	err := checkFrameSize(uint64(len(frame)))
	if err != nil {
		return false, err
	}
	h.mu.Lock()
	l := h.links[p]
	closing := h.closing
	h.mu.Unlock()
	if closing {
		return false, ErrClosed
	}
	if l == nil || l.isClosed() {
		return false, fmt.Errorf("%w %s", ErrNoLink, p)
	}
	if q := l.bytes.Load(); q > 0 && q+int64(len(frame)) > sendQueueBytes {
		return false, nil
	}
	b := bytes.Clone(frame)
	l.bytes.Add(int64(len(b))) // before the writer can take it
	l.queued.Add(1)
	select {
	case l.queue <- b:
		return true, nil
	case <-l.closed:
		err = fmt.Errorf("%w %s (going down)", ErrNoLink, p)
	default:
	}
	l.queued.Add(-1)
	l.bytes.Add(-int64(len(b)))
	return false, err
}

// peerHopAcks reports whether a link to p runs with hop acks: this host
// acknowledges and p listed HopAckProtocol in identify (waitIdentify ran).
func (h *Host) peerHopAcks(p peer.ID) bool {
	if h.cfg.noHopAcks {
		return false
	}
	ok, _ := h.host.Peerstore().SupportsProtocols(p, HopAckProtocol)
	return len(ok) > 0
}
