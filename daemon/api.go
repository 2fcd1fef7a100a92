package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/p2p"
)

var _ rpcapi.Node = (*Node)(nil)

// Info implements rpcapi.Node; it reads a snapshot and never waits for the
// node loop.
func (n *Node) Info(ctx context.Context) (rpcapi.NodeInfo, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.NodeInfo{}, err
	}
	s := n.snap.Load()
	return rpcapi.NodeInfo{
		Address:      n.id.Address().String(),
		Fingerprint:  n.fingerprint(n.id.Compact()),
		PeerID:       n.host.ID().String(),
		ListenAddrs:  n.host.Addrs(),
		Version:      Version,
		Started:      n.started.UTC(),
		Peers:        s.links,
		Routes:       s.routes,
		Custody:      s.custody,
		Inbox:        n.st.InboxLen(),
		DHTMode:      n.host.DHTMode(),
		Reachability: n.host.Reachability(),
		TCPListen:    n.tcpAddr(),
	}, nil
}

// Peers implements rpcapi.Node: every connected libp2p peer, with its mesh
// address and link once the meshd handshake finished.
func (n *Node) Peers(ctx context.Context) ([]rpcapi.Peer, error) {
	links := map[string]rpcapi.Peer{}
	if err := n.call(ctx, func() {
		for _, l := range n.links {
			links[l.peer.String()] = n.peerOf(l)
		}
	}); err != nil {
		return nil, err
	}
	out := []rpcapi.Peer{}
	for _, pi := range n.host.Peers() {
		p, ok := links[pi.ID.String()]
		if !ok {
			p = rpcapi.Peer{PeerID: pi.ID.String(), Direction: pi.Direction, Since: pi.Since.UTC()}
		}
		p.Addrs = pi.Addrs
		p.Relayed = pi.Relayed
		if p.Addrs == nil {
			p.Addrs = []string{}
		}
		out = append(out, p)
	}
	return out, nil
}

// Connect implements rpcapi.Node.
func (n *Node) Connect(ctx context.Context, addr string) (rpcapi.Peer, error) {
	if n.closing.Load() {
		return rpcapi.Peer{}, fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	}
	if ai, err := peer.AddrInfoFromString(addr); err == nil && ai.ID == n.host.ID() {
		return rpcapi.Peer{}, fmt.Errorf("%w: %s is this node", rpcapi.ErrInvalidParams, ai.ID)
	}
	ai, err := n.host.Connect(ctx, addr)
	switch {
	case errors.Is(err, p2p.ErrBadMultiaddr):
		return rpcapi.Peer{}, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	case errors.Is(err, p2p.ErrClosed):
		return rpcapi.Peer{}, fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	case err != nil:
		return rpcapi.Peer{}, fmt.Errorf("%w: %v", rpcapi.ErrConnect, err)
	}
	p := rpcapi.Peer{PeerID: ai.ID.String(), Direction: "outbound", Addrs: []string{}}
	for _, a := range ai.Addrs {
		p.Addrs = append(p.Addrs, a.String())
	}
	// Say whether a meshd link formed, not only the libp2p connection.
	wctx, cancel := context.WithTimeout(ctx, connectLinkWait)
	defer cancel()
	if addr, err := n.host.WaitLink(wctx, ai.ID); err != nil {
		p.NoLink = err.Error()
	} else {
		p.Address = addr.String()
	}
	return p, nil
}

// connectLinkWait bounds how long node.connect waits for the meshd link
// after the libp2p connection is up.
const connectLinkWait = 5 * time.Second

// Routes implements rpcapi.Node.
func (n *Node) Routes(ctx context.Context) ([]rpcapi.Route, error) {
	var rs []routing.Route
	if err := n.call(ctx, func() { rs = n.eng.Routes() }); err != nil {
		return nil, err
	}
	out := make([]rpcapi.Route, 0, len(rs))
	for _, r := range rs {
		src := "advert"
		if r.External {
			src = "dht"
		}
		out = append(out, rpcapi.Route{
			Dest: r.Dest.String(), NextHop: r.Via.String(), Link: uint32(r.Link), Metric: uint32(r.Metric),
			Hops: int(r.Hops), Seqno: r.Seq, Expires: r.Expires.UTC(), Source: src,
		})
	}
	return out, nil
}

// Send implements rpcapi.Node: the message is handed to the engine, and the
// answer waits until the engine's custody record is synced to disk.
func (n *Node) Send(ctx context.Context, p rpcapi.SendParams) (rpcapi.SendResult, error) {
	dest, err := protocol.ParseAddress(p.To)
	if err != nil {
		return rpcapi.SendResult{}, fmt.Errorf("%w: to: %v", rpcapi.ErrInvalidParams, err)
	}
	body := p.Payload
	if p.Text != "" {
		if len(p.Payload) > 0 {
			return rpcapi.SendResult{}, fmt.Errorf("%w: give text or payload, not both", rpcapi.ErrInvalidParams)
		}
		body = []byte(p.Text)
	}
	if len(body) == 0 {
		return rpcapi.SendResult{}, fmt.Errorf("%w: empty message: give text or payload", rpcapi.ErrInvalidParams)
	}
	if p.TTL < 0 || p.TTL > int64(protocol.MaxLifetime/time.Second) {
		return rpcapi.SendResult{}, fmt.Errorf("%w: ttl %d: want 0 (the default) to %d seconds", rpcapi.ErrInvalidParams, p.TTL, int64(protocol.MaxLifetime/time.Second))
	}
	if err := n.refuseSend(); err != nil {
		return rpcapi.SendResult{}, err
	}
	r := sendReqs.Get().(*sendReq)
	r.dest, r.body, r.ttl, r.sealed = dest, body, time.Duration(p.TTL)*time.Second, p.SealedSender
	if err := n.submit(ctx, loopCmd{send: r}); err != nil {
		r.put()
		return rpcapi.SendResult{}, err
	}
	o, err := n.awaitSend(ctx, r.w)
	if err != nil {
		// The message may still be sent: the engine may have it. The
		// client learns its fate from msg.subscribe. The loop may still
		// answer r: it is not reused.
		return rpcapi.SendResult{}, err
	}
	heard := r.heard
	r.put()
	if o.err != nil {
		return rpcapi.SendResult{}, o.err
	}
	res := rpcapi.SendResult{ID: hex.EncodeToString(o.id[:]), Status: o.status.String(), Detail: statusDetail(o.status)}
	if o.status != routing.StatusLocal {
		ttl := time.Duration(p.TTL) * time.Second
		if ttl == 0 {
			ttl = time.Duration(n.cfg.Routing.MessageTTL)
		}
		res.Expires = n.now().Add(ttl).UTC().Truncate(time.Second)
	}
	if !heard {
		res.Warning = unheardWarning
	}
	return res, nil
}

// sendReq is one msg.send on its way through the loop: what the loop
// needs, the answer's channel and what the loop found out before it
// answered. The requests are reused (sendReqs), so that a message costs
// no channel, closure or captured variable of its own.
type sendReq struct {
	dest   protocol.Address
	body   []byte
	ttl    time.Duration
	sealed bool
	heard  bool // written by the loop before w is answered
	w      chan sendOutcome
}

var sendReqs = sync.Pool{New: func() any { return &sendReq{w: make(chan sendOutcome, 1)} }}

// put returns r to the pool. Only a request whose answer was taken (or
// which never reached the loop) goes back: then nothing on the loop still
// holds it.
func (r *sendReq) put() {
	r.body, r.heard = nil, false
	sendReqs.Put(r)
}

// stepSend hands a msg.send to the engine, on the loop; its answer comes
// with the engine's event once the batch is synced (onEngineEvent).
func (n *Node) stepSend(r *sendReq) {
	r.heard = n.eng.Heard(r.dest)
	n.nextRef++
	ref := n.nextRef
	n.waiters[ref] = r.w
	err := n.eng.Step(n.now(), routing.SendRequest{
		Ref: ref, Dest: r.dest, Body: r.body, TTL: r.ttl, SealedSender: r.sealed,
	})
	if err != nil && n.waiters[ref] != nil {
		delete(n.waiters, ref)
		r.w <- sendOutcome{err: fmt.Errorf("%w: %v", rpcapi.ErrRefused, err)}
	}
}

// awaitSend waits for the outcome of a send handed to the loop. The loop
// answers every waiter it registered before it stops (shutdownLoop), so
// a stopped loop with no answer waiting never ran the request.
func (n *Node) awaitSend(ctx context.Context, w <-chan sendOutcome) (sendOutcome, error) {
	return awaitLoop(ctx, n.stopped, w)
}

// statusDetail explains each send status to people.
func statusDetail(s routing.SendStatus) string {
	switch s {
	case routing.StatusRouted:
		return "sent towards the destination; kept on disk until its receipt arrives"
	case routing.StatusCustody:
		return "no route to the destination yet; kept in custody on disk and retried until it expires"
	case routing.StatusAwaitingKey:
		return "the destination's key is not known yet; kept in custody on disk while the mesh is asked for it"
	case routing.StatusLocal:
		return "the destination is this node; delivered to its inbox"
	}
	return ""
}

// Inbox implements rpcapi.Node.
func (n *Node) Inbox(ctx context.Context, p rpcapi.InboxParams) (rpcapi.InboxPage, error) {
	limit := p.Limit
	if limit == 0 {
		limit = 100
	}
	if limit < 0 || limit > 1000 {
		return rpcapi.InboxPage{}, fmt.Errorf("%w: limit %d: want 1 to 1000", rpcapi.ErrInvalidParams, p.Limit)
	}
	page := rpcapi.InboxPage{Messages: []rpcapi.Message{}, Next: p.After}
	// A damaged entry must not block the inbox: skip it, say so (its
	// sequence number goes into Corrupt, so the app can ack it away) and
	// read on.
	var entries []store.InboxEntry
	after := p.After
	for len(entries) <= limit {
		got, _, err := n.st.Inbox(after, limit+1-len(entries))
		entries = append(entries, got...)
		var ce *store.CorruptEntryError
		if errors.As(err, &ce) {
			n.log.Error("damaged inbox entry skipped; acknowledge it to remove it", "seq", ce.Seq, "err", ce.Err)
			page.Corrupt = append(page.Corrupt, ce.Seq)
			after = ce.Seq
			if len(page.Corrupt) < maxCorruptPerPage {
				continue
			}
			page.More = true // read on after the last damaged entry
		}
		if err != nil {
			return rpcapi.InboxPage{}, err
		}
		break
	}
	if len(entries) > limit {
		entries, page.More = entries[:limit], true
	}
	bytes, taken := 0, 0
	for i, e := range entries {
		// A page stops at about maxPageBytes of payload (1000 messages of
		// 64 KiB would make a 90 MB answer); the cursor says where to go on.
		if bytes += len(e.Body); i > 0 && bytes > maxPageBytes {
			page.More = true
			break
		}
		page.Next = e.Seq
		taken++
		if e.Type == protocol.TypeFAPP {
			// FAPP's own message, taken out of the inbox by the node loop
			// (fapp_reserve.go); not an app's.
			continue
		}
		m := n.messageOf(e)
		page.Messages = append(page.Messages, m)
	}
	if taken == len(entries) && len(page.Corrupt) > 0 {
		// Every entry read made it into the page: the cursor may move past
		// the damaged ones too.
		page.Next = max(page.Next, page.Corrupt[len(page.Corrupt)-1])
	}
	return page, nil
}

// maxCorruptPerPage bounds the damaged entries one msg.inbox call skips.
const maxCorruptPerPage = 100

// maxPageBytes bounds the payload bytes of one msg.inbox page.
const maxPageBytes = 4 << 20

// Ack implements rpcapi.Node.
func (n *Node) Ack(ctx context.Context, seqs []uint64) (rpcapi.AckResult, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.AckResult{}, err
	}
	if len(seqs) > 10000 {
		return rpcapi.AckResult{}, fmt.Errorf("%w: %d sequence numbers in one call; at most 10000", rpcapi.ErrInvalidParams, len(seqs))
	}
	unknown, err := n.unknownInbox(seqs)
	if err != nil {
		return rpcapi.AckResult{}, err
	}
	if err := n.st.Ack(seqs...); err != nil {
		return rpcapi.AckResult{}, err
	}
	return rpcapi.AckResult{Remaining: n.st.InboxLen(), Unknown: unknown}, nil
}

// StoreStats implements rpcapi.Node.
func (n *Node) StoreStats(ctx context.Context) (rpcapi.StoreStats, error) {
	s, err := n.st.Stats()
	if err != nil {
		return rpcapi.StoreStats{}, err
	}
	out := rpcapi.StoreStats{
		Custody: s.Engine["c/"], Delivered: s.Engine["d/"], Inbox: s.Inbox,
		LSMBytes: s.LSMBytes, VLogBytes: s.VLogBytes,
	}
	for _, v := range s.Engine {
		out.EngineRecords += v
	}
	return out, nil
}

// Subscribe implements rpcapi.Node.
func (n *Node) Subscribe(ctx context.Context) (<-chan rpcapi.Event, func(), error) {
	if n.closing.Load() {
		return nil, nil, fmt.Errorf("%w: shutting down", rpcapi.ErrUnavailable)
	}
	s := n.hub.add(256)
	stop := context.AfterFunc(ctx, func() { n.hub.remove(s) })
	return s.ch, func() { stop(); n.hub.remove(s) }, nil
}

// fingerprint caches fingerprints: each costs 5,200 SHA-512 rounds.
func (n *Node) fingerprint(c protocol.CompactIdentity) string {
	fpCache.Lock()
	defer fpCache.Unlock()
	if fp, ok := fpCache.m[c]; ok {
		return fp
	}
	if len(fpCache.m) >= 4096 {
		clear(fpCache.m)
	}
	fp := c.Fingerprint()
	fpCache.m[c] = fp
	return fp
}

var fpCache = struct {
	sync.Mutex
	m map[protocol.CompactIdentity]string
}{m: map[protocol.CompactIdentity]string{}}

// hub fans node events out to subscribers without ever blocking the loop.
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool // closeAll ran: new subscribers get a closed channel
	// count is len(subs), for listening's look without the lock.
	count atomic.Int32
}

// listening reports whether anyone subscribes: an event nobody would get
// need not be built. A subscriber added meanwhile misses it, as it would
// have had it been added just after.
func (h *hub) listening() bool { return h.count.Load() > 0 }

type subscriber struct {
	ch     chan rpcapi.Event
	seq    uint64
	closed bool
}

func (h *hub) add(buf int) *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &subscriber{ch: make(chan rpcapi.Event, buf)}
	if h.closed {
		s.closed = true
		close(s.ch)
		return s
	}
	h.subs[s] = struct{}{}
	h.count.Store(int32(len(h.subs)))
	return s
}

func (h *hub) remove(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
		delete(h.subs, s)
		h.count.Store(int32(len(h.subs)))
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.closed = true
		close(s.ch)
	}
	clear(h.subs)
	h.count.Store(0)
}

// publish numbers the event per subscriber; a full subscriber loses it and
// sees the gap in Seq.
func (h *hub) publish(ev rpcapi.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.seq++
		ev.Seq = s.seq
		select {
		case s.ch <- ev:
		default:
		}
	}
}
