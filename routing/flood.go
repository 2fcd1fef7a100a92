package routing

import (
	"bytes"
	"container/heap"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Managed flooding carries channel broadcasts over mesh links (TCP and
// radio). Every node relays a new frame once, with the hop count bumped, until
// the hop limit. On a radio the rebroadcast waits a random delay whose place
// in the window depends on the frame's signal quality: far neighbours (low
// SNR) go first, because their rebroadcast reaches the most new nodes; a
// node that hears enough neighbours rebroadcast during its delay, or one
// from close by, cancels its own (docs/routing.md, section 6). A scoped
// channel's frames are relayed only by its members. Frames too old
// or from the future are refused first, and members drop frames that do not
// authenticate. IP neighbours get broadcasts through gossip instead (the
// daemon publishes what Ready.Publish holds), and frames from gossip are
// flooded onto mesh links, so a bridging node joins both worlds. The dedup
// cache stops every loop.

// handleChannel handles a channel frame from link l, or from gossip (l nil).
func (e *Engine) handleChannel(l *link, raw []byte, snr float64, hasSNR bool) error {
	f, err := protocol.ParseChannelFrame(raw)
	if err != nil {
		e.counters.FramesMalformed++
		return err
	}
	e.counters.FloodIn++
	if err := f.CheckFresh(e.now, e.cfg.FloodMaxAge, e.cfg.ClockSkew); err != nil {
		e.counters.FloodStale++
		return nil
	}
	k, member := e.channels[f.Channel]
	if !member && e.scoped[f.Channel] {
		// A scoped channel (a FAPP region) crosses the mesh only through
		// the nodes that follow it, so a radio does not carry every
		// region's traffic.
		e.counters.FloodOutOfScope++
		return nil
	}
	key, expires := floodKey(f), f.Sent().Add(e.cfg.FloodMaxAge)
	if !member {
		// A node that cannot check the tag keys what it relays on the
		// frame's bytes: junk raced ahead under the frame's dedup key
		// (another tag or ciphertext) is then another frame, and cannot
		// take the genuine one's place.
		key = relayKey(raw)
	}
	seen := e.seenFor(member)
	switch seen.check(key, expires, e.now) {
	case floodDuplicate:
		e.counters.FloodDuplicate++
		e.heardRebroadcast(l, key, raw, snr, hasSNR)
		return nil
	case floodForgotten:
		if member {
			e.counters.FloodStale++
			return nil
		}
		// A non-member cannot tell a frame it forgot from a replay, and
		// refusing both would let junk it cannot check (dated ahead, so
		// it outlives fresh frames) stop every broadcast it relays. A
		// replay costs it one relay, within the hop limit; members refuse
		// it themselves.
	}
	var d *Delivery
	if member {
		// A member authenticates before anything else: a frame that fails
		// (a raised hop limit, a re-dated replay, a forgery) is dropped, not
		// relayed, and does not take the dedup key from the genuine frame.
		m, err := e.openChannel(f, k, raw)
		if err != nil {
			e.counters.FloodForged++
			return nil
		}
		d = &Delivery{
			Type: protocol.TypeMessage, From: m.From, Sender: m.Sender, Body: m.Body,
			Channel: f.Channel, Broadcast: true, Signed: m.Signed, Hops: f.HopCount,
		}
	}
	seen.add(key, expires)
	if d != nil {
		e.rd.Deliveries = append(e.rd.Deliveries, *d)
		e.counters.FloodDelivered++
	}
	if l != nil {
		e.rd.Publish = append(e.rd.Publish, Publish{Channel: f.Channel, Frame: append([]byte(nil), raw...)})
	} else {
		// Gossip is not a mesh hop, and any gossip peer can race a frame
		// here with its (unauthenticated) hop count at the limit, gossip
		// then dropping the genuine copies as duplicates: mesh hops count
		// from this bridge (TestAttackGossipHopCountRace).
		raw = append([]byte(nil), raw...)
		raw[1] &= 0xf0
	}
	e.relayChannel(l, key, raw, snr, hasSNR)
	return nil
}

// seenFor returns the flood dedup cache for frames of a joined channel
// (member) or of another one. Only authenticated frames enter the
// members' cache, so junk nobody can check never evicts their keys nor
// raises its floor.
func (e *Engine) seenFor(member bool) *floodSeen {
	if member {
		return e.floodSeen
	}
	return e.relaySeen
}

// heardRebroadcast counts a copy of a frame heard on l against the pending
// rebroadcasts of that frame on l. Only the frame itself counts (the same
// bytes but the hop count, which forwarders change): a neighbour who sends
// junk under the frame's dedup key (another tag or ciphertext, a raised hop
// limit) must not make nodes that cannot check the tag cancel their
// rebroadcasts.
func (e *Engine) heardRebroadcast(l *link, key [16]byte, raw []byte, snr float64, hasSNR bool) {
	if l == nil {
		return
	}
	for _, p := range e.floods[key] {
		if p.link == l.info.ID && sameChannelFrame(p.frame, raw) {
			p.heard++
			if p.heard >= e.cfg.FloodCancelAfter || (hasSNR && e.floodClose(l, snr)) {
				e.cancelFlood(key, p)
			}
		}
	}
}

// sameChannelFrame reports whether two encoded channel frames are one frame
// with possibly different hop counts (bits 3-0 of byte 1).
func sameChannelFrame(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 2 && a[0] == b[0] && a[1]&0xf0 == b[1]&0xf0 && bytes.Equal(a[2:], b[2:])
}

// relayChannel relays a new frame from l (nil: gossip or the node itself)
// on the other mesh links: at once on point-to-point links, after a delay
// on shared ones.
func (e *Engine) relayChannel(l *link, key [16]byte, raw []byte, snr float64, hasSNR bool) {
	fwd := append([]byte(nil), raw...)
	if err := protocol.IncrementChannelHops(fwd); err != nil {
		e.counters.FloodHopLimit++
		return
	}
	for _, ol := range e.sortedLinks() {
		switch {
		case ol.info.Kind == LinkIP:
			// gossip carries it
		case !ol.info.Shared:
			if ol != l {
				e.emit(ol, Address{}, fwd, PriBulk)
				e.counters.FloodRelayed++
			}
		case ol.floodBytes > 0 && ol.floodBytes+len(fwd) > ol.queue.limit:
			// A radio sends no more than its queue holds in a window:
			// without this bound a neighbour's junk (frames of channels
			// this node cannot authenticate) would wait here for hours.
			e.counters.FloodRelayDropped++
		default:
			delay := e.floodDelay(ol, len(fwd), snr, hasSNR && ol == l)
			e.floods[key] = append(e.floods[key], &pendingFlood{key: key, link: ol.info.ID, frame: fwd, due: e.now.Add(delay)})
			ol.floodBytes += len(fwd)
		}
	}
}

// floodDelay picks the rebroadcast delay on a shared link. The window is
// FloodWindow frame airtimes, long enough that the neighbours' rebroadcasts
// do not overlap (they would collide without carrier sense, and with it a
// frame handed to the radio can no longer be cancelled), so each node hears
// the rebroadcasts before its own is due. The delay is the frame's place in
// the window by SNR (weakest first: a far receiver's rebroadcast reaches the
// most new nodes, a near one's the fewest) plus a random spread of one
// window, so equal SNRs do not collide.
func (e *Engine) floodDelay(l *link, n int, snr float64, hasSNR bool) time.Duration {
	air := time.Duration(int64(n) * 8 * int64(time.Second) / int64(max(l.info.Bitrate, 1)))
	window := max(time.Duration(e.cfg.FloodWindow)*air, 20*time.Millisecond)
	pos := 0.5
	if hasSNR {
		// The distance as a share of the range, from log-distance path
		// loss (exponent 2.08) above the SNR floor: 1 at the floor, 0.5 at
		// 6.3 dB above it; far goes first.
		dist := min(math.Pow(10, -(snr-snrFloor(l.info.Bitrate))/20.8), 1)
		pos = 1 - dist
	}
	return time.Duration(pos*float64(window)) + e.jitter(window)
}

// floodClose reports whether a rebroadcast heard at snr came from close by:
// FloodCloseMargin above the link's sensitivity floor, which under
// log-distance path loss (exponent about 2) is within about half the range
// for the default 7 dB. A node that close covers most of what this node's
// rebroadcast would (Ni et al.'s distance-based scheme: the additional
// coverage falls towards zero as the distance shrinks), so hearing one is
// enough to cancel.
func (e *Engine) floodClose(l *link, snr float64) bool {
	return e.cfg.FloodCloseMargin > 0 && snr >= snrFloor(l.info.Bitrate)+e.cfg.FloodCloseMargin
}

// snrFloor estimates the SNR floor of a LoRa link from its bitrate: -12.5 dB
// at SF9 (1,760 bit/s at 125 kHz), 2.5 dB lower for each halving of the
// bitrate (each SF step), as in the SX127x data sheets (SF7 -7.5 dB .. SF12
// -20 dB).
func snrFloor(bitrate int) float64 {
	return -12.5 - 2.5*math.Log2(1760/float64(max(bitrate, 1)))
}

func (e *Engine) cancelFlood(key [16]byte, p *pendingFlood) {
	e.unpendFlood(p)
	ps := slices.DeleteFunc(e.floods[key], func(x *pendingFlood) bool { return x == p })
	if len(ps) == 0 {
		delete(e.floods, key)
	} else {
		e.floods[key] = ps
	}
	e.counters.FloodCancelled++
}

// unpendFlood gives back what a pending rebroadcast held on its link.
func (e *Engine) unpendFlood(p *pendingFlood) {
	if l := e.links[p.link]; l != nil {
		l.floodBytes -= len(p.frame)
	}
}

// tickFloods sends rebroadcasts whose delay passed, in due order.
func (e *Engine) tickFloods() {
	var due []*pendingFlood
	for key, ps := range e.floods {
		keep := ps[:0]
		for _, p := range ps {
			if p.due.After(e.now) {
				keep = append(keep, p)
			} else {
				due = append(due, p)
			}
		}
		if len(keep) == 0 {
			delete(e.floods, key)
		} else {
			e.floods[key] = keep
		}
	}
	slices.SortFunc(due, func(a, b *pendingFlood) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		if c := bytes.Compare(a.key[:], b.key[:]); c != 0 {
			return c
		}
		return int(a.link) - int(b.link)
	})
	for _, p := range due {
		e.unpendFlood(p)
		l := e.links[p.link]
		if l != nil && e.lowBudget(l) {
			e.counters.FloodYielded++ // the neighbours' rebroadcasts carry it
			continue
		}
		if l != nil && e.emit(l, Address{}, p.frame, PriBulk) {
			e.counters.FloodRelayed++
		}
	}
}

// broadcast sends an application's message to a channel.
func (e *Engine) broadcast(in Broadcast) error {
	hop := in.HopLimit
	if hop == 0 || hop > protocol.MaxChannelHops {
		hop = e.cfg.FloodHopLimit
	}
	var signer *protocol.Identity
	if in.Signed {
		signer = e.id
	}
	frame, err := protocol.SealChannel(e.cfg.Rand, in.Channel, hop, e.now, in.Body, signer)
	if err != nil {
		e.counters.SendRefused++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventRefused, Ref: in.Ref, Err: err})
		return fmt.Errorf("broadcast: %w", err)
	}
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return err
	}
	_, member := e.channels[f.Channel]
	e.seenFor(member).add(floodKey(f), f.Sent().Add(e.cfg.FloodMaxAge))
	for _, l := range e.sortedLinks() {
		if l.info.Kind != LinkIP {
			e.emit(l, Address{}, frame, PriBulk)
		}
	}
	e.rd.Publish = append(e.rd.Publish, Publish{Channel: f.Channel, Frame: frame})
	e.rd.Events = append(e.rd.Events, Event{Kind: EventBroadcast, Ref: in.Ref})
	return nil
}

// floodKey is the dedup key of a channel frame in the engine's 16-byte key
// space: 'c', then channel ID, message ID and send time.
func floodKey(f *protocol.ChannelFrame) [16]byte {
	var k [16]byte
	k[0] = 'c'
	dk := f.DedupKey()
	copy(k[16-len(dk):], dk[:])
	return k
}

// relayKey names a channel frame by its bytes but the hop count, for nodes
// that are not members of its channel: a truncated SHA-256 under a label,
// in its own space ('r') apart from floodKey's ('c').
func relayKey(raw []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte("meshd/channel-relay/v1\x00"))
	h.Write([]byte{raw[0], raw[1] & 0xf0})
	h.Write(raw[2:])
	var k [16]byte
	k[0] = 'r'
	copy(k[1:], h.Sum(nil))
	return k
}

// floodVerdict is what the flood dedup cache says about a frame.
type floodVerdict int

const (
	floodNew       floodVerdict = iota
	floodDuplicate              // let through before
	floodForgotten              // possibly let through before, but forgotten early: refused
)

// floodSeen remembers every channel frame the node let through until the
// frame expires (send time + FloodMaxAge), the moment CheckFresh starts
// refusing it: between the two, no frame can be accepted twice. It holds at
// most size keys; when full it forgets the key that expires first and
// raises floor to that expiry, and refuses every frame that expires at or
// before floor (such a frame may be one it forgot). Under a flood of junk
// the window shrinks for old frames; it never lets a replay through.
//
// The cache lives in memory, so a restarted node has forgotten everything:
// it starts with floor set to refuse every frame sent before the second it
// started. It misses broadcasts that were in flight when it came up, and for
// as long as a sender's clock is behind its own.
type floodSeen struct {
	expires map[[16]byte]time.Time
	heap    floodHeap
	size    int
	floor   time.Time
}

func newFloodSeen(size int, start time.Time, maxAge time.Duration) *floodSeen {
	// A frame is refused when its expiry, sent+maxAge, is at or before
	// floor, so this refuses sent < start (to the second).
	floor := start.Truncate(time.Second).Add(maxAge - time.Second)
	return &floodSeen{expires: make(map[[16]byte]time.Time), size: size, floor: floor}
}

// check tells whether a frame with key k expiring at exp is new, after
// dropping the keys that expired by now.
func (s *floodSeen) check(k [16]byte, exp, now time.Time) floodVerdict {
	for len(s.heap) > 0 && s.heap[0].exp.Before(now) {
		delete(s.expires, heap.Pop(&s.heap).(floodEntry).key)
	}
	switch _, ok := s.expires[k]; {
	case ok:
		return floodDuplicate
	case !exp.After(s.floor):
		return floodForgotten
	}
	return floodNew
}

// add records k (checked new) with its expiry.
func (s *floodSeen) add(k [16]byte, exp time.Time) {
	if _, ok := s.expires[k]; ok {
		return
	}
	for len(s.heap) >= max(s.size, 1) {
		old := heap.Pop(&s.heap).(floodEntry)
		delete(s.expires, old.key)
		if old.exp.After(s.floor) {
			s.floor = old.exp
		}
	}
	s.expires[k] = exp
	heap.Push(&s.heap, floodEntry{exp: exp, key: k})
}

func (s *floodSeen) len() int { return len(s.expires) }

type floodEntry struct {
	exp time.Time
	key [16]byte
}

// floodHeap orders entries by expiry, then key (deterministic).
type floodHeap []floodEntry

func (h floodHeap) Len() int { return len(h) }
func (h floodHeap) Less(i, j int) bool {
	if c := h[i].exp.Compare(h[j].exp); c != 0 {
		return c < 0
	}
	return bytes.Compare(h[i].key[:], h[j].key[:]) < 0
}
func (h floodHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *floodHeap) Push(x any)   { *h = append(*h, x.(floodEntry)) }
func (h *floodHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
