package routing

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/protocol"
)

// Managed flooding carries channel broadcasts over mesh links (TCP and
// radio). Every node relays a new frame once, with the hop count bumped, until
// the hop limit. On a radio the rebroadcast waits a short random delay whose
// window depends on the frame's signal quality: far neighbours (low SNR)
// wait less and go first, because their rebroadcast reaches the most new
// nodes; a node that hears enough neighbours rebroadcast during its delay
// cancels its own. IP neighbours get broadcasts through gossip instead (the
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
	key := channelKey(f.DedupKey())
	if !e.seen.add(key) {
		e.counters.FloodDuplicate++
		if l != nil {
			for _, p := range e.floods[key] {
				if p.link == l.info.ID {
					p.heard++
					if p.heard >= e.cfg.FloodCancelAfter {
						e.cancelFlood(key, p)
					}
				}
			}
		}
		return nil
	}
	if k, ok := e.channels[f.Channel]; ok {
		if m, err := f.Open(k); err == nil {
			e.rd.Deliveries = append(e.rd.Deliveries, Delivery{
				Type: protocol.TypeMessage, From: m.From, Sender: m.Sender, Body: m.Body,
				Channel: f.Channel, Broadcast: true, Signed: m.Signed, Hops: f.HopCount,
			})
			e.counters.FloodDelivered++
		} else {
			e.counters.OpenFailed++
		}
	}
	if l != nil {
		e.rd.Publish = append(e.rd.Publish, Publish{Channel: f.Channel, Frame: append([]byte(nil), raw...)})
	}
	fwd := append([]byte(nil), raw...)
	if err := protocol.IncrementChannelHops(fwd); err != nil {
		e.counters.FloodHopLimit++
		return nil
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
		default:
			delay := e.floodDelay(ol, len(fwd), snr, hasSNR && ol == l)
			e.floods[key] = append(e.floods[key], &pendingFlood{key: key, link: ol.info.ID, frame: fwd, due: e.now.Add(delay)})
		}
	}
	return nil
}

// floodDelay picks the rebroadcast delay on a shared link: a window of a few
// frame airtimes, shifted later the stronger the frame was heard.
func (e *Engine) floodDelay(l *link, n int, snr float64, hasSNR bool) time.Duration {
	air := time.Duration(int64(n) * 8 * int64(time.Second) / int64(max(l.info.Bitrate, 1)))
	window := max(4*air, 20*time.Millisecond)
	pos := 0.5
	if hasSNR {
		// -20 dB (the SF12 floor, far away) .. +10 dB (close by).
		pos = min(max((snr+20)/30, 0), 1)
	}
	return time.Duration(pos*float64(window)) + e.jitter(window)
}

func (e *Engine) cancelFlood(key [16]byte, p *pendingFlood) {
	ps := slices.DeleteFunc(e.floods[key], func(x *pendingFlood) bool { return x == p })
	if len(ps) == 0 {
		delete(e.floods, key)
	} else {
		e.floods[key] = ps
	}
	e.counters.FloodCancelled++
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
		if l := e.links[p.link]; l != nil && e.emit(l, Address{}, p.frame, PriBulk) {
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
	frame, err := protocol.SealChannel(e.cfg.Rand, in.Channel, hop, in.Body, signer)
	if err != nil {
		e.counters.SendRefused++
		e.rd.Events = append(e.rd.Events, Event{Kind: EventRefused, Ref: in.Ref, Err: err})
		return fmt.Errorf("broadcast: %w", err)
	}
	f, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return err
	}
	e.seen.add(channelKey(f.DedupKey()))
	for _, l := range e.sortedLinks() {
		if l.info.Kind != LinkIP {
			e.emit(l, Address{}, frame, PriBulk)
		}
	}
	e.rd.Publish = append(e.rd.Publish, Publish{Channel: f.Channel, Frame: frame})
	e.rd.Events = append(e.rd.Events, Event{Kind: EventBroadcast, Ref: in.Ref})
	return nil
}
