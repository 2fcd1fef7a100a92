package tcp

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/transports/link"
)

// TestAttackWrongIdentity: a peer configured with a mesh address refuses
// a listener that proves another identity.
func TestAttackWrongIdentity(t *testing.T) {
	c, s := connPair(t)
	honest, other := newIdentity(t), newIdentity(t)
	rs := goHandshake(s, honest, false, protocol.Address{})
	ri := goHandshake(c, newIdentity(t), true, other.Address())
	if r := <-ri; !errors.Is(r.err, ErrAuth) {
		t.Fatalf("initiator accepted %v, want ErrAuth", r.err)
	}
	c.Close()
	<-rs
}

// forgedInitiator runs the initiator's side of the handshake but sends
// claimed as its identity with a signature by signer.
func forgedInitiator(t *testing.T, c net.Conn, claimed *protocol.PublicIdentity, signer *protocol.Identity) *session {
	t.Helper()
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var mine hello
	copy(mine.key[:], eph.PublicKey().Bytes())
	rand.Read(mine.nonce[:])
	theirs, err := exchangeHellos(c, &mine)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ecdh.X25519().NewPublicKey(theirs.key[:])
	secret, _ := eph.ECDH(pub)
	th := transcript(&mine, &theirs)
	s, _ := newSession(secret, th[:], true)
	body, _ := claimed.AppendBinary(nil)
	body = append(body, signer.Sign(labelInitiator, th[:])...)
	c.Write(s.send.seal(nil, recAuth, body))
	return s
}

// TestAttackImpersonation: an initiator that claims a victim's identity
// but can sign only with its own key is refused.
func TestAttackImpersonation(t *testing.T) {
	c, s := connPair(t)
	victim, attacker := newIdentity(t), newIdentity(t)
	rs := goHandshake(s, newIdentity(t), false, protocol.Address{})
	forgedInitiator(t, c, victim.Public(), attacker)
	if r := <-rs; !errors.Is(r.err, ErrAuth) {
		t.Fatalf("responder accepted an impersonator: %v", r.err)
	}
}

// TestAttackReflectedProof: a responder's own proof sent back to it (the
// initiator signs with the responder's label) is refused.
func TestAttackReflectedProof(t *testing.T) {
	c, s := connPair(t)
	id := newIdentity(t)
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var mine hello
	copy(mine.key[:], eph.PublicKey().Bytes())
	rs := goHandshake(s, newIdentity(t), false, protocol.Address{})
	theirs, err := exchangeHellos(c, &mine)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ecdh.X25519().NewPublicKey(theirs.key[:])
	secret, _ := eph.ECDH(pub)
	th := transcript(&mine, &theirs)
	sess, _ := newSession(secret, th[:], true)
	body, _ := id.Public().AppendBinary(nil)
	body = append(body, id.Sign(labelResponder, th[:])...) // the wrong role
	c.Write(sess.send.seal(nil, recAuth, body))
	if r := <-rs; !errors.Is(r.err, ErrAuth) {
		t.Fatalf("responder accepted a proof signed for the other role: %v", r.err)
	}
}

// recorder keeps what passes through a connection's writes.
type recorder struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) { r.buf.Write(b); return r.Conn.Write(b) }

// TestAttackReplayedHandshake: everything an honest initiator sent in one
// handshake, replayed to the same listener on a new connection, does not
// make a link (the listener's fresh nonce and key are in the transcript).
func TestAttackReplayedHandshake(t *testing.T) {
	server, initiator := newIdentity(t), newIdentity(t)
	c, s := connPair(t)
	rec := &recorder{Conn: c}
	rs := goHandshake(s, server, false, protocol.Address{})
	if r := <-goHandshake(rec, initiator, true, protocol.Address{}); r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-rs; r.err != nil || r.s.peer.Address() != initiator.Address() {
		t.Fatalf("honest handshake: %v", r.err)
	}
	c2, s2 := connPair(t)
	rs2 := goHandshake(s2, server, false, protocol.Address{})
	go io.Copy(io.Discard, c2)
	c2.Write(rec.buf.Bytes())
	r := <-rs2
	if r.err == nil {
		t.Fatalf("a replayed handshake made a link to %s", r.s.peer.Address())
	}
	if !errors.Is(r.err, ErrAuth) {
		t.Fatalf("replay: %v, want ErrAuth", r.err)
	}
}

// TestAttackMITM: a man in the middle with keys of its own between two
// honest nodes relays the identity proofs (re-sealed under its keys); both
// honest sides refuse, because their transcripts differ.
func TestAttackMITM(t *testing.T) {
	ci, mi := connPair(t) // initiator <-> MITM
	mr, sr := connPair(t) // MITM <-> responder
	ri := goHandshake(ci, newIdentity(t), true, protocol.Address{})
	rr := goHandshake(sr, newIdentity(t), false, protocol.Address{})
	go func() {
		// Toward each honest side the MITM runs its own ephemeral key.
		toI, toR := mitmHalf(mi, false), mitmHalf(mr, true)
		if toI == nil || toR == nil {
			return
		}
		// Relay each proof, opened under one key, sealed under the other.
		go relay(mi, toI, mr, toR)
		relay(mr, toR, mi, toI)
	}()
	if r := <-ri; !errors.Is(r.err, ErrAuth) {
		t.Errorf("initiator accepted a link through a MITM: %v", r.err)
	}
	if r := <-rr; !errors.Is(r.err, ErrAuth) {
		t.Errorf("responder accepted a link through a MITM: %v", r.err)
	}
}

func mitmHalf(c net.Conn, initiator bool) *session {
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var mine hello
	copy(mine.key[:], eph.PublicKey().Bytes())
	rand.Read(mine.nonce[:])
	theirs, err := exchangeHellos(c, &mine)
	if err != nil {
		return nil
	}
	pub, _ := ecdh.X25519().NewPublicKey(theirs.key[:])
	secret, _ := eph.ECDH(pub)
	hi, hr := &mine, &theirs
	if !initiator {
		hi, hr = hr, hi
	}
	th := transcript(hi, hr)
	s, _ := newSession(secret, th[:], initiator)
	return s
}

func relay(from net.Conn, fs *session, to net.Conn, ts *session) {
	typ, body, err := fs.recv.readRecord(from)
	if err != nil {
		return
	}
	to.Write(ts.send.seal(nil, typ, body))
}

// attackerLink completes an honest handshake with a listening transport
// and returns the raw connection and the attacker's session, so the
// attacker can then write whatever it likes.
func attackerLink(t *testing.T, cfg Config) (net.Conn, *session, *Transport) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	tr := newTransport(t, cfg)
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := <-goHandshake(c, newIdentity(t), true, protocol.Address{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, r.s, tr
}

func waitDown(t *testing.T, l link.Link) error {
	t.Helper()
	select {
	case <-l.Done():
		return l.Err()
	case <-testCtx(t).Done():
		t.Fatal("link stayed up")
		return nil
	}
}

// TestAttackOversizedFrame: a length prefix beyond the limit closes the
// link before anything is allocated for it.
func TestAttackOversizedFrame(t *testing.T) {
	for _, n := range []uint32{maxRecord + 1, 1 << 31, 0xffffffff, 0, 16} {
		c, _, tr := attackerLink(t, Config{})
		l := nextLink(t, testCtx(t), tr)
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], n)
		c.Write(hdr[:])
		if err := waitDown(t, l); !errors.Is(err, ErrBadRecord) {
			t.Errorf("length %d: link down with %v, want ErrBadRecord", n, err)
		}
	}
}

// TestAttackOversizedFrameSealed: a well-sealed data record whose frame
// is over the MTU closes the link.
func TestAttackOversizedFrameSealed(t *testing.T) {
	c, s, tr := attackerLink(t, Config{})
	l := nextLink(t, testCtx(t), tr)
	c.Write(s.send.seal(nil, recData, make([]byte, MaxFrameSize+1)))
	if err := waitDown(t, l); !errors.Is(err, ErrBadRecord) {
		t.Errorf("link down with %v, want ErrBadRecord", err)
	}
}

// TestAttackTruncatedFrame: a record cut short by the connection's end.
func TestAttackTruncatedFrame(t *testing.T) {
	c, s, tr := attackerLink(t, Config{})
	l := nextLink(t, testCtx(t), tr)
	rec := s.send.seal(nil, recData, []byte("a frame cut short"))
	c.Write(rec[:len(rec)-5])
	c.(*net.TCPConn).CloseWrite()
	if err := waitDown(t, l); !errors.Is(err, ErrBadRecord) {
		t.Errorf("link down with %v, want ErrBadRecord", err)
	}
}

// TestAttackEndlessFrame: a peer that announces a frame within the limit
// and then trickles nothing is taken down as dead, without waiting
// forever.
func TestAttackEndlessFrame(t *testing.T) {
	c, _, tr := attackerLink(t, Config{Keepalive: 20 * time.Millisecond, DeadAfter: 200 * time.Millisecond})
	l := nextLink(t, testCtx(t), tr)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 60000)
	c.Write(hdr[:])
	c.Write(make([]byte, 100))
	if err := waitDown(t, l); !errors.Is(err, ErrDeadPeer) {
		t.Errorf("link down with %v, want ErrDeadPeer", err)
	}
}

// TestAttackTamperedRecord: a record altered in transit (or a forged one)
// fails authentication and closes the link; the frame is never delivered.
func TestAttackTamperedRecord(t *testing.T) {
	c, s, tr := attackerLink(t, Config{})
	l := nextLink(t, testCtx(t), tr)
	rec := s.send.seal(nil, recData, []byte("pay 10"))
	rec[len(rec)-tagSize-1] ^= 1
	c.Write(rec)
	if f, err := l.Recv(testCtx(t)); err == nil {
		t.Fatalf("tampered frame delivered: %q", f.Data)
	}
	if !errors.Is(l.Err(), ErrBadRecord) {
		t.Errorf("link down with %v, want ErrBadRecord", l.Err())
	}
}

// TestAttackReplayedRecord: a record sent twice (the counter nonce moved
// on) closes the link after the first copy.
func TestAttackReplayedRecord(t *testing.T) {
	c, s, tr := attackerLink(t, Config{})
	l := nextLink(t, testCtx(t), tr)
	rec := s.send.seal(nil, recData, []byte("once"))
	c.Write(append(append([]byte(nil), rec...), rec...))
	if f, err := l.Recv(testCtx(t)); err != nil || string(f.Data) != "once" {
		t.Fatalf("first copy: %q %v", f.Data, err)
	}
	if f, err := l.Recv(testCtx(t)); err == nil {
		t.Fatalf("replayed frame delivered: %q", f.Data)
	}
	if !errors.Is(l.Err(), ErrBadRecord) {
		t.Errorf("link down with %v, want ErrBadRecord", l.Err())
	}
}

// TestAttackHandshakeNeverCompletes: a connection that sends nothing is
// closed after HandshakeTimeout.
func TestAttackHandshakeNeverCompletes(t *testing.T) {
	tr := newTransport(t, Config{Listen: "127.0.0.1:0", HandshakeTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, c) // the server's hello, then its close
	if err != nil {
		t.Fatalf("connection not closed by the listener: %v", err)
	}
	if tr.Stats().HandshakeFailures != 1 {
		t.Errorf("handshake failures %d, want 1", tr.Stats().HandshakeFailures)
	}
}

// TestAttackHalfOpen: connections that never finish their handshake hold
// at most MaxHandshakes slots; further ones are closed at once, and an
// honest peer gets in as soon as a slot frees.
func TestAttackHalfOpen(t *testing.T) {
	const slots = 4
	tr := newTransport(t, Config{Listen: "127.0.0.1:0", MaxHandshakes: slots, MaxPerHost: 2 * slots, HandshakeTimeout: time.Minute})
	var idle []net.Conn
	for range slots {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b [HelloSize]byte // the server's hello: its handshake runs
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	for i := range 3 {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := io.Copy(io.Discard, c)
		c.Close()
		if err != nil || n != 0 {
			t.Fatalf("connection %d beyond the cap: read %d bytes, %v; want closed at once", i, n, err)
		}
	}
	if got := tr.Stats().Refused; got != 3 {
		t.Errorf("refused %d, want 3", got)
	}
	idle[0].Close()
	b := newTransport(t, Config{Peers: []Peer{{Addr: tr.Addr().String()}}, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	nextLink(t, testCtx(t), b)
}

// TestAttackManyIdentities: identities cost nothing, so one attacker can
// prove a fresh one per connection; inbound links are capped at
// MaxInbound and further connections are closed at once.
func TestAttackManyIdentities(t *testing.T) {
	const limit = 3
	tr := newTransport(t, Config{Listen: "127.0.0.1:0", MaxInbound: limit, MaxPerHost: 2 * limit})
	ctx := testCtx(t)
	for range limit {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r := <-goHandshake(c, newIdentity(t), true, protocol.Address{}); r.err != nil {
			t.Fatal(r.err)
		}
		nextLink(t, ctx, tr)
	}
	c, err := net.Dial("tcp", tr.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := <-goHandshake(c, newIdentity(t), true, protocol.Address{}); r.err == nil {
		t.Fatalf("link %d of %d allowed came up", limit+1, limit)
	}
	if got := tr.Stats().Refused; got != 1 {
		t.Errorf("refused %d, want 1", got)
	}
}

// dialFrom connects to addr from the loopback address from (127.0.0.x),
// so that tests can play several hosts; it skips where only 127.0.0.1
// is a loopback address.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAttackOneHostTakesEveryInboundLink: one host proving a fresh
// identity per connection must not take every inbound link and lock out
// the honest nodes on other hosts.
func TestAttackOneHostTakesEveryInboundLink(t *testing.T) {
	const limit = 4
	tr := newTransport(t, Config{Listen: "127.0.0.1:0", MaxInbound: limit})
	addr := tr.Addr().String()
	go func() { // the daemon reads links as they come
		for range tr.Links() {
		}
	}()
	for range limit {
		c := dialFrom(t, "127.0.0.1", addr)
		<-goHandshake(c, newIdentity(t), true, protocol.Address{})
	}
	c := dialFrom(t, "127.0.0.2", addr)
	if r := <-goHandshake(c, newIdentity(t), true, protocol.Address{}); r.err != nil {
		t.Fatalf("an honest host was locked out by one that took every inbound link: %v", r.err)
	}
}

// TestAttackOneHostTakesEveryHandshakeSlot: one host holding silent
// connections must not take every handshake slot either.
func TestAttackOneHostTakesEveryHandshakeSlot(t *testing.T) {
	const slots = 4
	tr := newTransport(t, Config{Listen: "127.0.0.1:0", MaxHandshakes: slots, HandshakeTimeout: time.Minute})
	addr := tr.Addr().String()
	for range slots {
		dialFrom(t, "127.0.0.1", addr) // says nothing
	}
	c := dialFrom(t, "127.0.0.2", addr)
	if r := <-goHandshake(c, newIdentity(t), true, protocol.Address{}); r.err != nil {
		t.Fatalf("an honest host was locked out by one holding every handshake slot: %v", r.err)
	}
}

// TestAttackCloseToPeerThatDoesNotRead: an orderly close (Close(nil))
// tries the close record for a second; a peer that has stopped reading
// must not hold the link's goroutines and socket for the whole
// WriteTimeout.
func TestAttackCloseToPeerThatDoesNotRead(t *testing.T) {
	mine, theirs := net.Pipe() // a write blocks until the peer reads: it never does
	defer theirs.Close()
	s, err := newSession(make([]byte, 32), make([]byte, 32), true)
	if err != nil {
		t.Fatal(err)
	}
	k := newConn(mine, s, link.Info{Kind: link.KindTCP, MTU: MaxFrameSize},
		limits{keepalive: time.Hour, deadAfter: 2 * time.Hour, writeTimeout: time.Hour, maxPending: 1 << 20})
	k.Close(nil)
	stopped := make(chan struct{})
	go func() { k.wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		mine.Close() // let the goroutines go before the leak check
		<-stopped
		t.Fatal("the link's writer still held the connection 20 s after an orderly close (the close record's one second was extended to WriteTimeout)")
	}
}

// TestPerHostCapCountsAnIPv6Slash64: an IPv6 host usually holds a whole
// /64 and can connect from any address in it; the per-host cap must count
// the /64 as one host.
func TestPerHostCapCountsAnIPv6Slash64(t *testing.T) {
	a := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 2}
	c := &net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}
	if hostOf(a) != hostOf(b) {
		t.Errorf("%v and %v (one /64) counted as two hosts", a, b)
	}
	if hostOf(a) == hostOf(c) {
		t.Errorf("%v and %v (two /64s) counted as one host", a, c)
	}
	v4a, v4b := &net.TCPAddr{IP: net.ParseIP("192.0.2.1")}, &net.TCPAddr{IP: net.ParseIP("192.0.2.2")}
	if hostOf(v4a) == hostOf(v4b) {
		t.Errorf("%v and %v counted as one host", v4a, v4b)
	}
}

// TestAttackHugeIdentityProof: before it proved anything, a peer announces
// a 64 KiB "identity proof" and sends nothing more. The proof has a fixed
// size: the handshake must fail at the length, not hold its slot (and a
// 64 KiB buffer) until the handshake timeout.
func TestAttackHugeIdentityProof(t *testing.T) {
	c, s := connPair(t)
	res := goHandshake(s, newIdentity(t), false, protocol.Address{})
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var h hello
	copy(h.key[:], eph.PublicKey().Bytes())
	c.Write(h.marshal())
	var theirs [HelloSize]byte
	if _, err := io.ReadFull(c, theirs[:]); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxRecord)
	c.Write(hdr[:])
	r := <-res
	var ne net.Error
	if errors.As(r.err, &ne) && ne.Timeout() || !errors.Is(r.err, ErrAuth) {
		t.Fatalf("handshake ended with %v; want ErrAuth at the announced length, not a wait for the body", r.err)
	}
}

// TestAttackNeverReads: a peer that completes the handshake and then
// never reads holds at most MaxPending bytes of queue, and loses its link
// after WriteTimeout; Send then fails instead of waiting forever.
func TestAttackNeverReads(t *testing.T) {
	const pending = 128 << 10
	_, _, tr := attackerLink(t, Config{MaxPending: pending, WriteTimeout: 200 * time.Millisecond,
		Keepalive: time.Minute, DeadAfter: 2 * time.Minute})
	l := nextLink(t, testCtx(t), tr)
	frame := make([]byte, MaxFrameSize)
	ctx := testCtx(t)
	var err error
	for err == nil {
		err = l.Send(ctx, frame)
		if q := l.Stats().QueueBytes; q > pending {
			t.Fatalf("%d bytes queued for a peer that does not read (limit %d)", q, pending)
		}
	}
	if !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Send to a peer that never reads: %v, want ErrClosed", err)
	}
	var ne net.Error
	if !errors.As(l.Err(), &ne) || !ne.Timeout() {
		t.Errorf("link down with %v, want a write timeout", l.Err())
	}
}
