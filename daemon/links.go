package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
	contract "meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/p2p"
	"meshd.dev/meshd/transports/tcp"
)

// Links of every kind other than libp2p reach the engine through the link
// contract (transports/link). A transport (TCP, LoRa) is opened in
// openTransports; Run starts runTransport for each, which hands every link
// the transport reports up to the loop (attach). attach gives the link an
// engine ID and a routing.LinkInfo from its contract Info, and starts its
// pump, which feeds the loop frames, TxDone reports and finally the
// link's end over linkIn. transmit sends through the contract's Send.

// linkInQueue bounds the frames and link events waiting for the loop; a
// full queue stops the pumps, and with them the links' reading.
const linkInQueue = 256

// errShutdown takes links down when the node stops.
var errShutdown = errors.New("daemon: node shutting down")

// linkEvent is what a link's pump hands the loop: a frame, a TxDone
// count, or the link's end (down).
type linkEvent struct {
	l      *link
	frame  contract.Frame
	txDone int
	down   bool
}

// openTransports starts the configured link transports other than
// libp2p. A new link kind adds its transport here.
func openTransports(cfg Config, id *protocol.Identity, log *slog.Logger, acc tcpAccess) ([]contract.Transport, error) {
	var ts []contract.Transport
	if cfg.TCP.Listen != "" || len(cfg.TCP.Peers) > 0 {
		peers := make([]tcp.Peer, 0, len(cfg.TCP.Peers))
		for _, s := range cfg.TCP.Peers {
			p, err := tcp.ParsePeer(s)
			if err != nil {
				return nil, fmt.Errorf("%w: tcp.peers: %v", ErrConfig, err)
			}
			peers = append(peers, p)
		}
		t, err := tcp.New(tcp.Config{Identity: id, Listen: cfg.TCP.Listen, Peers: peers, Logger: log, NetworkKey: acc.key, Guard: acc.guard()})
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	lts, err := openLoRa(cfg, log)
	if err != nil {
		for _, t := range ts {
			t.Close()
		}
		return nil, err
	}
	ts = append(ts, lts...)
	return ts, nil
}

// closeTransports stops every transport (their links go down).
func (n *Node) closeTransports() error {
	var errs []error
	for _, t := range n.transports {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// tcpAddr is the TCP transport's listening address, or "".
func (n *Node) tcpAddr() string {
	for _, t := range n.transports {
		if tt, ok := t.(*tcp.Transport); ok && tt.Addr() != nil {
			return tt.Addr().String()
		}
	}
	return ""
}

// runTransport hands each link t reports up to the loop.
func (n *Node) runTransport(t contract.Transport) {
	for c := range t.Links() {
		if !n.enqueue(func() { n.attach(c) }) {
			c.Close(errShutdown)
		}
	}
}

// attach brings a contract link up in the engine, on the loop.
func (n *Node) attach(c contract.Link) {
	if n.closing.Load() {
		c.Close(errShutdown)
		return
	}
	info := c.Info()
	n.nextLink++
	l := &link{id: n.nextLink, kind: routingKind(info.Kind), since: n.now(), outbound: info.Outbound, conn: c, info: info}
	if info.Peer != nil && !info.Shared {
		l.addr = info.Peer.Address()
	}
	n.byLink[l.id] = l
	n.publishLinks()
	n.startSender(l)
	ri := routingInfo(l.id, info)
	ri.Window = l.window()
	n.step(routing.LinkUp{Link: ri})
	if info.Peer != nil && !info.Shared {
		// The handshake proved the neighbour's identity: its keys are
		// known, so messages to it can be sealed at once.
		n.step(routing.Resolved{Dest: l.addr, Link: l.id, Identity: info.Peer})
	}
	n.bg.Go(func() { n.pump(l) })
	if c.TxDone() != nil {
		n.bg.Go(func() { n.pumpTxDone(l) })
	}
	if info.DutyCycle > 0 {
		n.bg.Go(func() { n.pumpBudget(l) })
	}
	p := n.peerOf(l)
	n.hub.publish(rpcapi.Event{Kind: rpcapi.EventPeerUp, Peer: &p})
	n.log.Info("link up", "kind", l.kind.String(), "peer", info.Name, "address", l.addr, "link", l.id)
}

// pump reads the link's frames into the loop until the link ends, then
// reports the end (after every frame that arrived before it).
func (n *Node) pump(l *link) {
	for {
		f, err := l.conn.Recv(n.ctx)
		if err != nil {
			if n.ctx.Err() != nil {
				l.conn.Close(errShutdown)
				return
			}
			n.toLoop(linkEvent{l: l, down: true})
			return
		}
		if err := n.vetFrame(l, f.Data); errors.Is(err, errDropped) {
			continue
		} else if err != nil {
			l.conn.Close(err) // an offender: the pump sees the end next
			continue
		}
		if !n.toLoop(linkEvent{l: l, frame: f}) {
			return
		}
	}
}

// pumpTxDone forwards a windowed link's TxDone reports.
func (n *Node) pumpTxDone(l *link) {
	for {
		select {
		case k := <-l.conn.TxDone():
			if !n.toLoop(linkEvent{l: l, txDone: k}) {
				return
			}
		case <-l.conn.Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) toLoop(ev linkEvent) bool {
	select {
	case n.linkIn <- ev:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// onLinkEvent runs a pump's event on the loop.
func (n *Node) onLinkEvent(ev linkEvent) {
	l := ev.l
	if l.gone {
		return
	}
	switch {
	case ev.down:
		n.log.Debug("link ended", "kind", l.kind.String(), "peer", l.label(), "err", l.conn.Err())
		n.linkDown(l)
	case ev.txDone > 0:
		n.step(routing.TxDone{Link: l.id, Frames: ev.txDone})
	default:
		if n.refuseFrame(ev.frame.Data) {
			return
		}
		in := n.frameIn(l.id, ev.frame.Data)
		if ev.frame.Radio != nil {
			in.SNR, in.HasSNR = ev.frame.Radio.SNR, true
		}
		if err := n.eng.Step(n.now(), in); err != nil {
			n.log.Debug("frame refused", "peer", l.label(), "err", err)
			n.frameRefused(l, err)
		}
	}
}

// sentFrame counts a frame the daemon queued on a libp2p link.
func (l *link) sentFrame(frame []byte) {
	l.framesOut.Add(1)
	l.bytesOut.Add(uint64(len(frame)))
}

// noteGivenUp remembers a frame a windowed link did not take: the engine
// counts it in flight until a TxDone, which the link itself will never
// send for it, so the window would stay shut.
func (n *Node) noteGivenUp(l *link) {
	if l.info.Window == 0 {
		return
	}
	if n.givenUp == nil {
		n.givenUp = map[routing.LinkID]int{}
	}
	n.givenUp[l.id]++
}

// giveUpFrames reports the frames noteGivenUp collected as done (after
// Advance: the engine takes no input while its Ready is carried out). A
// frame given up is like one lost on the air: hop acknowledgements and
// custody send it again.
func (n *Node) giveUpFrames() {
	for id, k := range n.givenUp {
		delete(n.givenUp, id)
		if n.byLink[id] != nil {
			n.step(routing.TxDone{Link: id, Frames: k})
		}
	}
}

// label names the link's far end for logs.
func (l *link) label() string {
	if l.conn != nil {
		return l.info.Name
	}
	return l.peer.String()
}

// publishLinks refreshes the list of links API goroutines read.
func (n *Node) publishLinks() {
	ls := make([]*link, 0, len(n.byLink))
	for _, l := range n.byLink {
		ls = append(ls, l)
	}
	n.linkList.Store(&ls)
}

func routingKind(k contract.Kind) routing.LinkKind {
	switch k {
	case contract.KindTCP:
		return routing.LinkTCP
	case contract.KindLoRa:
		return routing.LinkLoRa
	}
	return routing.LinkIP
}

// p2pInfo describes a libp2p link in the contract's terms, so that links
// of every kind reach the engine through routingInfo.
func p2pInfo(ev p2p.LinkUp) contract.Info {
	// HopAcks: a forwarder keeps an envelope until the next hop
	// acknowledges it, so a frame handed to a link that then dies is sent
	// again on another route (or kept in custody) by the forwarder rather
	// than left to the origin's end-to-end retry. Only with a peer that
	// acknowledges (an older meshd does not).
	// Window: the engine hands the link no more frames than its send
	// queue holds, so the node loop never waits for it (p2psend.go).
	return contract.Info{Kind: contract.KindIP, Name: ev.Peer.String(), MTU: p2p.IPLinkMTU, Peer: ev.Identity, Outbound: ev.Outbound, HopAcks: ev.HopAcks,
		Window: p2p.SendWindow}
}

// routingInfo is the engine's view of a link.
func routingInfo(id routing.LinkID, in contract.Info) routing.LinkInfo {
	ri := routing.LinkInfo{
		ID: id, Kind: routingKind(in.Kind), MTU: in.MTU, Bitrate: in.Bitrate, Shared: in.Shared,
		HopAcks: in.HopAcks, Window: in.Window, DutyCycle: in.DutyCycle,
	}
	if in.Peer != nil && !in.Shared {
		ri.Peer = in.Peer.Address()
	}
	return ri
}

// Links implements rpcapi.Node: every link that is up, of every kind. It
// reads the list the loop publishes and the links' own counters, never
// waiting for the loop.
func (n *Node) Links(ctx context.Context) ([]rpcapi.Link, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return nil, err
	}
	ls := *n.linkList.Load()
	out := make([]rpcapi.Link, 0, len(ls))
	for _, l := range ls {
		out = append(out, n.linkOf(l))
	}
	slices.SortFunc(out, func(a, b rpcapi.Link) int { return cmp.Compare(a.ID, b.ID) })
	for _, t := range n.transports {
		if r, ok := t.(contract.Reporter); ok {
			for _, w := range r.Waiting() {
				out = append(out, waitingLink(w))
			}
		}
	}
	return out, nil
}

// waitingLink describes a link a transport is trying to bring up.
func waitingLink(w contract.Waiting) rpcapi.Link {
	l := rpcapi.Link{Kind: routingKind(w.Kind).String(), Name: w.Name, State: w.State}
	if w.Err != nil {
		l.Error = w.Err.Error()
	}
	if !w.Retry.IsZero() {
		r := w.Retry.UTC()
		l.Retry = &r
	}
	return l
}

// linkOf describes a link for node.links.
func (n *Node) linkOf(l *link) rpcapi.Link {
	r := rpcapi.Link{ID: uint32(l.id), Kind: l.kind.String(), Name: l.label(), State: "up", Since: l.since.UTC(), Direction: "inbound"}
	if l.stalled.Load() {
		r.State = "stalled"
	}
	if l.outbound {
		r.Direction = "outbound"
	}
	if !l.addr.IsZero() {
		r.Peer = l.addr.String()
	}
	if l.conn == nil {
		r.FramesIn, r.FramesOut, r.BytesIn, r.BytesOut = l.framesIn.Load(), l.framesOut.Load(), l.bytesIn.Load(), l.bytesOut.Load()
		r.MTU, r.QueueFrames = l.info.MTU, n.host.LinkQueue(l.peer)
		return r
	}
	if l.info.Shared {
		r.Direction = ""
	}
	s := l.conn.Stats()
	r.FramesIn, r.FramesOut, r.BytesIn, r.BytesOut = s.FramesIn, s.FramesOut, s.BytesIn, s.BytesOut
	r.QueueFrames, r.QueueBytes, r.MTU = s.QueueFrames, s.QueueBytes, l.info.MTU
	if s.Radio != nil {
		rr := &rpcapi.LinkRadio{AirtimeUsedMS: s.Radio.AirtimeUsed.Milliseconds(), AirtimeLeftMS: s.Radio.AirtimeLeft.Milliseconds(), DutyCycle: l.info.DutyCycle}
		if s.Radio.Last != nil {
			rssi, snr := s.Radio.Last.RSSI, s.Radio.Last.SNR
			rr.RSSI, rr.SNR = &rssi, &snr
		}
		r.Radio = rr
	}
	select {
	case <-l.conn.Done():
		r.State = "down"
	default:
	}
	return r
}
