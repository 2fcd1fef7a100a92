package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/rpcapi"
)

// LogLevel is the level of the logger meshd builds (daemon/cmd/meshd);
// node.loglevel changes it at run time.
var LogLevel = new(slog.LevelVar)

var _ rpcapi.ToolsNode = (*Node)(nil)

// Bounds of what msg.status remembers of finished messages: in memory,
// for statusKeep, the last maxStatus of them at least and 2*maxStatus at
// most (finishedMemory).
const (
	statusKeep = 24 * time.Hour
	maxStatus  = 10000
	maxContact = 10000
)

// toolsState is the node loop's part of the outbox, ping and path tools.
type toolsState struct {
	finished finishedMemory
	pings    map[uint64]*pingWait
}

// finishedMemory remembers how messages ended, for msg.status, in two
// generations of at most maxStatus messages each: a message goes into
// the current one, and when that is full the older generation is
// forgotten whole and the current one becomes the older. So the last
// maxStatus messages are always remembered, and a message costs one map
// insert: no lookup and delete of the oldest, and no deleted slots in
// the maps to probe past (a map is cleared whole, its room kept).
type finishedMemory struct {
	cur, old map[protocol.MessageID]finishedMsg
}

// remember notes how message id ended; a message remembered again
// counts from its latest end.
func (m *finishedMemory) remember(id protocol.MessageID, f finishedMsg) {
	if len(m.cur) >= maxStatus {
		m.cur, m.old = m.old, m.cur
		clear(m.cur)
	}
	if m.cur == nil {
		m.cur = make(map[protocol.MessageID]finishedMsg, maxStatus)
	}
	m.cur[id] = f
}

// lookup returns how message id ended, unless that is unknown or was
// more than statusKeep before now.
func (m *finishedMemory) lookup(id protocol.MessageID, now time.Time) (finishedMsg, bool) {
	f, ok := m.cur[id]
	if !ok {
		f, ok = m.old[id]
	}
	if !ok || time.Duration(now.UnixNano()-f.updated) > statusKeep {
		return finishedMsg{}, false
	}
	return f, true
}

// size is how many messages m remembers, also ones older than a day.
func (m *finishedMemory) size() int { return len(m.cur) + len(m.old) }

// finishedMsg is how a message ended, for msg.status. It holds no
// pointers, so the collector need not scan the map of up to maxStatus of
// them, and its map slots are small.
type finishedMsg struct {
	dest    protocol.Address
	updated int64 // when, in Unix nanoseconds
	state   finishState
}

// finishState is how a message ended.
type finishState uint8

const (
	finishDelivered finishState = iota + 1
	finishExpired
	finishCancelled
)

// String is the state as msg.status says it.
func (s finishState) String() string {
	switch s {
	case finishDelivered:
		return "delivered"
	case finishExpired:
		return "expired"
	case finishCancelled:
		return "cancelled"
	}
	return ""
}

type pingWait struct {
	start time.Time
	id    protocol.MessageID
	hasID bool
	done  chan pingOutcome
}

type pingOutcome struct {
	rtt  time.Duration
	hops int
	err  error
}

// noteEvent runs on the loop for every engine event, carried out at now:
// it answers pings and remembers how messages ended. It reports whether
// the event was a ping's (which nobody else needs to hear of).
func (n *Node) noteEvent(ev routing.Event, now time.Time) bool {
	t := &n.tools
	if pw := t.pings[ev.Ref]; pw != nil && ev.Ref != 0 {
		switch ev.Kind {
		case routing.EventAccepted:
			pw.id, pw.hasID = ev.ID, true
		case routing.EventDelivered:
			delete(t.pings, ev.Ref)
			pw.done <- pingOutcome{rtt: now.Sub(pw.start), hops: int(ev.Hops) + 1}
		case routing.EventRefused:
			delete(t.pings, ev.Ref)
			pw.done <- pingOutcome{err: fmt.Errorf("%w: %v", rpcapi.ErrRefused, ev.Err)}
		case routing.EventExpired, routing.EventCancelled:
			delete(t.pings, ev.Ref)
			pw.done <- pingOutcome{err: fmt.Errorf("%w: no answer", rpcapi.ErrRefused)}
		}
		return true
	}
	var state finishState
	switch ev.Kind {
	case routing.EventAccepted:
		if ev.Status != routing.StatusLocal {
			return false
		}
		state = finishDelivered // to this node's own inbox
	case routing.EventDelivered:
		state = finishDelivered
	case routing.EventExpired:
		state = finishExpired
	case routing.EventCancelled:
		state = finishCancelled
		n.hub.publish(rpcapi.Event{Kind: rpcapi.EventCancelled, ID: hex.EncodeToString(ev.ID[:])})
	default:
		return false
	}
	n.rememberFinished(ev.ID, finishedMsg{state: state, dest: ev.Dest, updated: now.UnixNano()})
	return false
}

func (n *Node) rememberFinished(id protocol.MessageID, f finishedMsg) {
	n.tools.finished.remember(id, f)
}

// outboxState names an engine custody state for people.
func outboxState(s string) string {
	switch s {
	case "custody":
		return "pending"
	case "sent":
		return "forwarded"
	}
	return s
}

// MsgOutbox implements rpcapi.ToolsNode.
func (n *Node) MsgOutbox(ctx context.Context) ([]rpcapi.OutboxEntry, error) {
	var ps []routing.Pending
	if err := n.call(ctx, func() { ps = n.eng.Outbox() }); err != nil {
		return nil, err
	}
	names := n.contactNames()
	out := make([]rpcapi.OutboxEntry, 0, len(ps))
	for _, p := range ps {
		e := rpcapi.OutboxEntry{
			ID: fmt.Sprintf("%x", p.ID[:]), To: p.Dest.String(), ToName: names[p.Dest], State: outboxState(p.State),
			Attempts: p.Attempts, Created: p.Created.Time().UTC(), Expires: p.Expires.Time().UTC(),
		}
		if !p.NextTry.IsZero() {
			t := p.NextTry.UTC().Truncate(time.Millisecond)
			e.NextRetry = &t
		}
		out = append(out, e)
	}
	return out, nil
}

// MsgStatus implements rpcapi.ToolsNode.
func (n *Node) MsgStatus(ctx context.Context, idHex string) (rpcapi.MsgStatus, error) {
	id, err := rpcapi.ParseMessageID(idHex)
	if err != nil {
		return rpcapi.MsgStatus{}, err
	}
	var pend *routing.Pending
	var fin finishedMsg
	var done bool
	if err := n.call(ctx, func() {
		for _, p := range n.eng.Outbox() {
			if p.ID == id {
				pend = &p
				return
			}
		}
		fin, done = n.tools.finished.lookup(id, n.now())
	}); err != nil {
		return rpcapi.MsgStatus{}, err
	}
	names := n.contactNames()
	switch {
	case pend != nil:
		return rpcapi.MsgStatus{ID: idHex, State: outboxState(pend.State), To: pend.Dest.String(), ToName: names[pend.Dest],
			Expires: pend.Expires.Time().UTC()}, nil
	case done:
		return rpcapi.MsgStatus{ID: idHex, State: fin.state.String(), To: fin.dest.String(), ToName: names[fin.dest],
			Updated: time.Unix(0, fin.updated).UTC()}, nil
	}
	return rpcapi.MsgStatus{}, fmt.Errorf("%w: message %s: not sent from this node, or finished more than a day ago or before a restart", rpcapi.ErrNotFound, idHex)
}

// MsgCancel implements rpcapi.ToolsNode. The answer comes after the
// deletion is synced: a cancelled message stays cancelled after a crash.
func (n *Node) MsgCancel(ctx context.Context, idHex string) (rpcapi.CancelResult, error) {
	id, err := rpcapi.ParseMessageID(idHex)
	if err != nil {
		return rpcapi.CancelResult{}, err
	}
	var k int
	var cerr, derr error
	if err := n.call(ctx, func() {
		k, cerr = n.eng.Cancel(n.now(), id)
		if cerr == nil {
			derr = n.drainDurable()
		}
	}); err != nil {
		return rpcapi.CancelResult{}, err
	}
	switch {
	case errors.Is(cerr, routing.ErrNotOwn):
		return rpcapi.CancelResult{}, fmt.Errorf("%w: message %s was sent by another node; this node only carries it, and only its sender can cancel it", rpcapi.ErrRefused, idHex)
	case errors.Is(cerr, routing.ErrUnknownMessage):
		return rpcapi.CancelResult{}, fmt.Errorf("%w: no message %s in custody (delivered, expired, cancelled, or never sent here; see msg.status)", rpcapi.ErrNotFound, idHex)
	case cerr != nil:
		return rpcapi.CancelResult{}, cerr
	case derr != nil:
		return rpcapi.CancelResult{}, derr
	}
	return rpcapi.CancelResult{ID: idHex, Cancelled: k}, nil
}

// pingBody is the echo request's body; its content does not matter.
var pingBody = []byte("meshd echo")

// Ping implements rpcapi.ToolsNode: an echo request through the mesh,
// answered by its receipt (routing/echo.go).
func (n *Node) Ping(ctx context.Context, p rpcapi.PingParams) (rpcapi.PingResult, error) {
	dest, name, err := n.resolveTarget(p.To)
	if err != nil {
		return rpcapi.PingResult{}, err
	}
	if dest == n.id.Address() {
		return rpcapi.PingResult{}, fmt.Errorf("%w: %s is this node", rpcapi.ErrInvalidParams, p.To)
	}
	timeout := 10 * time.Second
	if p.Timeout > 0 {
		timeout = time.Duration(p.Timeout) * time.Second
	}
	pw := &pingWait{done: make(chan pingOutcome, 1)}
	var ref uint64
	if err := n.call(ctx, func() {
		n.nextRef++
		ref = n.nextRef
		if n.tools.pings == nil {
			n.tools.pings = map[uint64]*pingWait{}
		}
		n.tools.pings[ref] = pw
		pw.start = n.now()
		if err := n.eng.Step(n.now(), routing.SendRequest{Ref: ref, Dest: dest, Body: pingBody, Type: protocol.TypeEcho, TTL: timeout}); err != nil {
			delete(n.tools.pings, ref)
			pw.done <- pingOutcome{err: fmt.Errorf("%w: %v", rpcapi.ErrRefused, err)}
		}
	}); err != nil {
		return rpcapi.PingResult{}, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case o := <-pw.done:
		if o.err != nil {
			return rpcapi.PingResult{}, o.err
		}
		return rpcapi.PingResult{To: dest.String(), ToName: name, RTTMillis: float64(o.rtt.Microseconds()) / 1000, Hops: o.hops}, nil
	case <-timer.C:
		n.abandonPing(ref)
		return rpcapi.PingResult{}, fmt.Errorf("%w: no answer from %s within %v", rpcapi.ErrRefused, p.To, timeout)
	case <-ctx.Done():
		n.abandonPing(ref)
		return rpcapi.PingResult{}, ctx.Err()
	}
}

// abandonPing forgets a ping nobody waits for and takes its echo request
// out of custody, so it is not retried for nothing.
func (n *Node) abandonPing(ref uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.call(ctx, func() {
		pw := n.tools.pings[ref]
		if pw == nil {
			return // answered meanwhile
		}
		if pw.hasID {
			if _, err := n.eng.Cancel(n.now(), pw.id); err == nil {
				// Its cancelled event forgets the ping (noteEvent); the
				// drain carries it out before anyone asks again.
				if err := n.drainDurable(); err != nil {
					n.log.Error("writing a cancelled ping", "err", err)
				}
				return
			}
		}
		delete(n.tools.pings, ref)
	})
}

// pathPoll is how often node.path looks for the route it asked for.
const pathPoll = 100 * time.Millisecond

// Path implements rpcapi.ToolsNode.
func (n *Node) Path(ctx context.Context, p rpcapi.PathParams) (rpcapi.PathResult, error) {
	dest, name, err := n.resolveTarget(p.To)
	if err != nil {
		return rpcapi.PathResult{}, err
	}
	res := rpcapi.PathResult{To: dest.String(), ToName: name}
	deadline := time.Now().Add(time.Duration(p.Wait) * time.Second)
	for {
		var nh *routing.NodeHeard
		ask := p.Wait > 0 && !res.Requested
		if err := n.call(ctx, func() {
			for _, x := range n.eng.Nodes() {
				if x.Address == dest && x.Route != nil {
					nh = &x
					return
				}
			}
			if ask {
				res.Requested = n.eng.RequestPath(n.now(), dest)
			}
		}); err != nil {
			return rpcapi.PathResult{}, err
		}
		if nh != nil {
			r := routeOf(*nh.Route)
			res.Route, res.LinkKind = &r, linkKindName(nh.LinkKind)
			return res, nil
		}
		if ask && !res.Requested {
			res.Requested = true // rate-limited: one went out a moment ago; wait for it
		}
		if p.Wait == 0 || !time.Now().Before(deadline) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return rpcapi.PathResult{}, ctx.Err()
		case <-time.After(pathPoll):
		}
	}
}

func routeOf(r routing.Route) rpcapi.Route {
	src := "advert"
	if r.External {
		src = "dht"
	}
	return rpcapi.Route{Dest: r.Dest.String(), NextHop: r.Via.String(), Link: uint32(r.Link), Metric: uint32(r.Metric),
		Hops: int(r.Hops), Seqno: r.Seq, Expires: r.Expires.UTC(), Source: src}
}

func linkKindName(k routing.LinkKind) string {
	if k == 0 {
		return ""
	}
	return k.String()
}

// Nodes implements rpcapi.ToolsNode.
func (n *Node) Nodes(ctx context.Context) ([]rpcapi.NodeEntry, error) {
	var ns []routing.NodeHeard
	if err := n.call(ctx, func() { ns = n.eng.Nodes() }); err != nil {
		return nil, err
	}
	names := n.contactNames()
	out := make([]rpcapi.NodeEntry, 0, len(ns))
	for _, x := range ns {
		e := rpcapi.NodeEntry{Address: x.Address.String(), Name: names[x.Address], HasKey: x.HasKey, Capabilities: []string{}}
		if x.Announced != 0 {
			t := x.Announced.Time().UTC()
			e.LastHeard = &t
		}
		if c := x.Capabilities.String(); c != "" {
			e.Capabilities = strings.Split(c, ",")
		}
		if x.Route != nil {
			e.Hops, e.NextHop, e.Metric = int(x.Route.Hops), x.Route.Via.String(), int(x.Route.Metric)
			e.LinkKind = linkKindName(x.LinkKind)
		}
		out = append(out, e)
	}
	return out, nil
}

// LogLevel implements rpcapi.ToolsNode.
func (n *Node) LogLevel(ctx context.Context, level string) (rpcapi.LogLevelResult, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.LogLevelResult{}, err
	}
	if level != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return rpcapi.LogLevelResult{}, fmt.Errorf("%w: level %q", rpcapi.ErrInvalidParams, level)
		}
		old := LogLevel.Level()
		LogLevel.Set(l)
		n.log.Info("log level changed", "from", old.String(), "to", l.String())
	}
	return rpcapi.LogLevelResult{Level: strings.ToLower(LogLevel.Level().String())}, nil
}

// unheardWarning is msg.send's warning for a destination never heard of.
const unheardWarning = "this node has never heard of the destination (no announce, route or key): check the address; the message is kept and retried until it expires, or cancel it with msg.cancel"
