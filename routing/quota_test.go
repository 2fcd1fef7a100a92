package routing_test

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Attacks on the engine's resources: a hostile neighbour floods valid
// envelopes to random destinations, which no node has a route to, so every
// one of them asks for custody. The measured attack on a real daemon: 6,000
// signed 16 KiB envelopes from one neighbour filled the whole 64 MiB custody
// quota and the victim's own sends were refused for up to 30 days.

const (
	floodCount   = 6000
	floodPayload = 16 << 10
)

// quotaIdentities are the victim, the attacker, an honest neighbour and a
// destination.
var quotaIdentities = sync.OnceValue(func() [4]*protocol.Identity {
	var ids [4]*protocol.Identity
	for i := range ids {
		id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes("quota", uint64(i), 1)))
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	return ids
})

// floodGen makes a hostile neighbour's envelopes: valid, to random
// destinations, each with a fresh ID. Signed by the attacker, or
// sealed-sender junk (no outer signature: forwarders cannot tell it from a
// real sealed message).
type floodGen struct {
	tb      testing.TB
	src     *protocol.Identity
	sealed  bool
	rng     *rand.ChaCha8
	payload []byte
	// dest, if set, is every envelope's destination; typ, if set, its type.
	dest protocol.Address
	typ  protocol.Type
}

func newFloodGen(tb testing.TB, src *protocol.Identity, sealed bool, seed uint64) *floodGen {
	g := &floodGen{tb: tb, src: src, sealed: sealed, rng: rand.NewChaCha8(seedBytes("flood", seed, 3)),
		payload: make([]byte, floodPayload)}
	_, _ = g.rng.Read(g.payload)
	return g
}

// next returns one envelope created at now.
func (g *floodGen) next(now time.Time) []byte {
	ts := protocol.TimestampOf(now)
	h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, Created: ts, Expires: ts + 7*24*3600, Dest: g.dest}
	if g.typ != 0 {
		h.Type = g.typ
	}
	_, _ = g.rng.Read(h.ID[:])
	if g.dest.IsZero() {
		_, _ = g.rng.Read(h.Dest[:])
	}
	if g.sealed {
		// A fresh payload prefix per envelope: sealed-sender envelopes
		// are keyed on their payload, so junk that reused one payload
		// under fresh IDs would be one envelope, deduplicated.
		payload := append([]byte(nil), g.payload...)
		_, _ = g.rng.Read(payload[:32])
		env := &protocol.Envelope{Type: h.Type, Flags: protocol.FlagSealed | protocol.FlagSealedSender,
			HopLimit: h.HopLimit, ID: h.ID, Created: h.Created, Expires: h.Expires, Dest: h.Dest, Payload: payload}
		raw, err := env.MarshalBinary()
		if err != nil {
			g.tb.Fatal(err)
		}
		return raw
	}
	env, err := protocol.SignEnvelope(g.src, h, g.payload)
	if err != nil {
		g.tb.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		g.tb.Fatal(err)
	}
	return raw
}

// victim is an engine under attack with its durable store.
type victim struct {
	tb     testing.TB
	cfg    routing.Config
	eng    *routing.Engine
	now    time.Time
	store  map[string][]byte
	events []routing.Event
	// lookups and frames emitted since the last reset.
	lookups, frames int
}

const (
	attackerLink routing.LinkID = 1
	honestLink   routing.LinkID = 2
	otherLink    routing.LinkID = 3
)

func newVictim(tb testing.TB, tweak func(*routing.Config)) *victim {
	ids := quotaIdentities()
	v := &victim{tb: tb, now: epoch, store: map[string][]byte{}}
	v.cfg = routing.Config{Identity: ids[0], Rand: rand.NewChaCha8(seedBytes("victim", 0, 2))}
	if tweak != nil {
		tweak(&v.cfg)
	}
	v.start(nil)
	return v
}

// start (re)starts the engine from the store, with its links up.
func (v *victim) start(records []routing.Record) {
	ids := quotaIdentities()
	eng, err := routing.New(v.cfg, v.now, records)
	if err != nil {
		v.tb.Fatal(err)
	}
	v.eng = eng
	for _, l := range []routing.LinkInfo{
		{ID: attackerLink, Kind: routing.LinkIP, Peer: ids[1].Address()},
		{ID: honestLink, Kind: routing.LinkIP, Peer: ids[2].Address()},
		{ID: otherLink, Kind: routing.LinkTCP},
	} {
		v.step(routing.LinkUp{Link: l})
	}
}

func (v *victim) restart() {
	recs := make([]routing.Record, 0, len(v.store))
	for k, val := range v.store {
		recs = append(recs, routing.Record{Key: k, Value: val})
	}
	slices.SortFunc(recs, func(a, b routing.Record) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	v.start(recs)
}

func (v *victim) step(in routing.Input) {
	_ = v.eng.Step(v.now, in)
	v.drain()
}

func (v *victim) drain() {
	for v.eng.HasReady() {
		rd := v.eng.Ready()
		for _, r := range rd.Persist {
			v.store[r.Key] = r.Value
		}
		for _, k := range rd.Deletes {
			delete(v.store, k)
		}
		v.events = append(v.events, rd.Events...)
		v.lookups += len(rd.Lookups)
		v.frames += len(rd.Transmits)
		v.eng.Advance()
	}
}

// flood feeds n envelopes from g on link, every gap apart.
func (v *victim) flood(g *floodGen, link routing.LinkID, n int, gap time.Duration) {
	for range n {
		v.step(routing.FrameReceived{Link: link, Frame: g.next(v.now)})
		if gap > 0 {
			v.now = v.now.Add(gap)
			v.eng.Tick(v.now)
			v.drain()
		}
	}
}

// sendOwn makes the victim send n messages of size bytes to a destination
// nobody knows and returns how many were accepted.
func (v *victim) sendOwn(n, size int, sealedSender bool) int {
	var dest protocol.Address
	dest[0], dest[15] = 0x5e, 0xd0
	before := len(v.events)
	for i := range n {
		v.step(routing.SendRequest{Ref: uint64(1000 + i), Dest: dest, Body: make([]byte, size), SealedSender: sealedSender})
	}
	accepted := 0
	for _, ev := range v.events[before:] {
		switch ev.Kind {
		case routing.EventAccepted:
			accepted++
		case routing.EventRefused:
			v.tb.Logf("own send %d refused: %v", ev.Ref, ev.Err)
		}
	}
	return accepted
}

// honestCustody has the honest neighbour send n small signed envelopes to
// unknown destinations and returns how many the victim took into custody.
func (v *victim) honestCustody(n int) int {
	before := v.eng.Counters().CustodyAccepted
	v.honestSend(n, protocol.Address{}, 1024)
	return int(v.eng.Counters().CustodyAccepted - before)
}

// honestSend has the honest neighbour send n signed envelopes with size
// bytes of payload to dest (random destinations if zero).
func (v *victim) honestSend(n int, dest protocol.Address, size int) {
	ids := quotaIdentities()
	rng := rand.NewChaCha8(seedBytes("honest", uint64(v.now.UnixNano()), 4))
	ts := protocol.TimestampOf(v.now)
	for range n {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, Created: ts, Expires: ts + 24*3600, Dest: dest}
		_, _ = rng.Read(h.ID[:])
		if dest.IsZero() {
			_, _ = rng.Read(h.Dest[:])
		}
		env, err := protocol.SignEnvelope(ids[2], h, make([]byte, size))
		if err != nil {
			v.tb.Fatal(err)
		}
		raw, err := env.MarshalBinary()
		if err != nil {
			v.tb.Fatal(err)
		}
		v.step(routing.FrameReceived{Link: honestLink, Frame: raw})
	}
}

// TestAttackSignedFlood: one neighbour sends 6,000 signed 16 KiB envelopes
// to random destinations. It may take its share of custody, no more: the
// victim's own messages and an honest neighbour's envelopes are still taken
// into custody, also after a restart, and the work the flood causes (path
// requests, lookups, frames) is bounded by the attacker's share, not by
// the size of the flood. One flood for the three checks, in order.
func TestAttackSignedFlood(t *testing.T) {
	v := newVictim(t, nil)
	v.lookups, v.frames = 0, 0
	v.flood(newFloodGen(t, quotaIdentities()[1], false, 1), attackerLink, floodCount, 0)
	c := v.eng.Counters()
	t.Logf("after the flood: %d records, %d bytes in custody, %d refused, %d lookups, %d frames",
		c.CustodyCount, c.CustodyBytes, c.CustodyRefused, v.lookups, v.frames)

	t.Run("bounded work", func(t *testing.T) {
		envSize := floodPayload + 200
		share := (64 << 20) / 4 / envSize // records a quarter of the quota holds
		if v.lookups > share {
			t.Errorf("%d lookups for one neighbour's flood, more than the %d records its share can hold", v.lookups, share)
		}
		// A path request per record, on each of the three links.
		if v.frames > 3*share+16 {
			t.Errorf("%d frames for one neighbour's flood, more than path requests for its share (%d)", v.frames, share)
		}
	})
	t.Run("custody", func(t *testing.T) {
		if limit := uint64(64<<20) / 4; c.CustodyBytes > limit {
			t.Errorf("one neighbour holds %d bytes of custody, more than a quarter of the quota (%d)", c.CustodyBytes, limit)
		}
		if got := v.sendOwn(16, 4<<10, false); got != 16 {
			t.Errorf("victim's own sends accepted after the flood: %d of 16", got)
		}
		if got := v.honestCustody(16); got != 16 {
			t.Errorf("honest neighbour's envelopes taken into custody after the flood: %d of 16", got)
		}
	})
	t.Run("restart", func(t *testing.T) {
		v.now = v.now.Add(time.Minute)
		v.restart()
		c := v.eng.Counters()
		t.Logf("after the restart: %d records, %d bytes in custody", c.CustodyCount, c.CustodyBytes)
		if got := v.sendOwn(16, 4<<10, false); got != 16 {
			t.Errorf("victim's own sends accepted after a restart: %d of 16", got)
		}
		if got := v.honestCustody(16); got != 16 {
			t.Errorf("honest neighbour's envelopes taken into custody after a restart: %d of 16", got)
		}
	})
}

// TestAttackSealedFloodCustody: the same flood as sealed-sender junk, which
// has no outer signature, so nothing tells who made it. It is held to its
// own small pool and rate: signed traffic from another neighbour and the
// node's own messages are not crowded out, and sealed-sender traffic from
// another neighbour still gets in.
func TestAttackSealedFloodCustody(t *testing.T) {
	v := newVictim(t, nil)
	// One envelope a second: the rate limit alone does not decide this
	// test, the pool does.
	v.flood(newFloodGen(t, nil, true, 2), attackerLink, floodCount, time.Second)
	c := v.eng.Counters()
	t.Logf("after the flood: %d records, %d bytes in custody, %d refused", c.CustodyCount, c.CustodyBytes, c.CustodyRefused)
	if limit := uint64(64<<20) / 16; c.CustodyBytes > limit {
		t.Errorf("sealed-sender junk from one neighbour holds %d bytes of custody, more than 1/16 of the quota (%d)", c.CustodyBytes, limit)
	}
	if got := v.sendOwn(16, 4<<10, true); got != 16 {
		t.Errorf("victim's own sends accepted after the flood: %d of 16", got)
	}
	if got := v.honestCustody(16); got != 16 {
		t.Errorf("honest neighbour's signed envelopes taken into custody after the flood: %d of 16", got)
	}
	before := v.eng.Counters().CustodyAccepted
	v.flood(newFloodGen(t, nil, true, 3), otherLink, 4, time.Second)
	if got := v.eng.Counters().CustodyAccepted - before; got != 4 {
		t.Errorf("another neighbour's sealed-sender envelopes taken into custody: %d of 4", got)
	}
}

// TestAttackSealedFloodRate: sealed-sender envelopes arriving faster than a
// link's rate are dropped before they reach custody or another link's
// queue.
func TestAttackSealedFloodRate(t *testing.T) {
	v := newVictim(t, nil)
	v.flood(newFloodGen(t, nil, true, 4), attackerLink, 2000, 0)
	c := v.eng.Counters()
	t.Logf("2,000 sealed-sender envelopes at one instant: %d in custody (%d bytes), %d rate-limited", c.CustodyCount, c.CustodyBytes, c.SealedRateLimited)
	if c.SealedRateLimited == 0 || c.CustodyAccepted+c.Forwarded+c.SealedRateLimited+c.CustodyRefused < 2000 {
		t.Errorf("rate limit: %d limited, %d accepted, %d refused of 2,000", c.SealedRateLimited, c.CustodyAccepted, c.CustodyRefused)
	}
	if c.CustodyAccepted > 200 {
		t.Errorf("%d sealed-sender envelopes arriving at one instant were taken into custody", c.CustodyAccepted)
	}
}

// BenchmarkFloodMemory reports the engine's heap after junk floods, against
// the custody quota (64 MiB): "attack" is the measured attack, 6,000
// signed 16 KiB envelopes to random destinations from one neighbour;
// "full-16KiB" and "full-256B" have 16 neighbours (each with its own
// signing identity) flood until the forwarded pool is full, with 16 KiB and
// with 256-byte payloads (where the records' bookkeeping, not their bytes,
// dominates). heap-MiB is the growth of HeapInuse after a full collection
// (spans in use, fragmentation included), live-MiB that of HeapAlloc,
// custody-MiB what the quotas charged (records' bytes plus their
// bookkeeping). The floods are built before the first measurement, in one
// buffer, so that only the engine's own allocations count.
//
//	go test ./routing -run '^$' -bench FloodMemory -benchtime 1x
func BenchmarkFloodMemory(b *testing.B) {
	for _, c := range []struct {
		name                string
		neighbours, perLink int
		payload             int
	}{
		{"attack", 1, floodCount, floodPayload},
		{"full-16KiB", 16, 400, floodPayload},
		{"full-256B", 16, 4000, 256},
	} {
		b.Run(c.name, func(b *testing.B) {
			floods := buildFloods(b, c.neighbours, c.perLink, c.payload)
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				before, beforeLive := heapAfterGC()
				v := newVictim(b, func(cfg *routing.Config) {})
				v.store = nil // the daemon's database, not the engine's heap
				for l := range c.neighbours {
					if l > 0 {
						v.step(routing.LinkUp{Link: routing.LinkInfo{ID: routing.LinkID(100 + l), Kind: routing.LinkIP,
							Peer: benchIdentities()[200+l].Address()}})
					}
				}
				for i := range c.perLink {
					for l := range c.neighbours {
						link := attackerLink
						if l > 0 {
							link = routing.LinkID(100 + l)
						}
						_ = v.eng.Step(v.now, routing.FrameReceived{Link: link, Frame: floods[l][i]})
						for v.eng.HasReady() {
							v.eng.Ready()
							v.eng.Advance()
						}
					}
				}
				after, afterLive := heapAfterGC()
				cs := v.eng.Counters()
				b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(afterLive-beforeLive)/(1<<20), "live-MiB")
				b.ReportMetric(float64(cs.CustodyBytes)/(1<<20), "custody-MiB")
				b.ReportMetric(float64(after-before)/float64(64<<20), "heap/quota")
				b.ReportMetric(float64(cs.CustodyCount), "records")
				runtime.KeepAlive(v)
				b.StartTimer()
			}
			b.ReportMetric(0, "ns/op")
			runtime.KeepAlive(floods)
		})
	}
}

// buildFloods makes perLink signed envelopes with payload bytes for each
// of n neighbours (the first signs as the attacker, the others with bench
// identities), all in one buffer.
func buildFloods(b *testing.B, n, perLink, payload int) [][][]byte {
	var all [][]byte
	total := 0
	for l := range n {
		src := quotaIdentities()[1]
		if l > 0 {
			src = benchIdentities()[200+l]
		}
		g := newFloodGen(b, src, false, uint64(100+l))
		g.payload = g.payload[:payload]
		for range perLink {
			raw := g.next(epoch)
			all = append(all, raw)
			total += len(raw)
		}
	}
	buf := make([]byte, 0, total)
	out := make([][][]byte, n)
	for i, raw := range all {
		buf = append(buf, raw...)
		out[i/perLink] = append(out[i/perLink], buf[len(buf)-len(raw):len(buf):len(buf)])
	}
	return out
}

// heapAfterGC returns the heap spans in use and the live heap after a full
// collection.
func heapAfterGC() (inuse, live uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.HeapAlloc
}

// TestAttackQueueShare: a neighbour floods envelopes for a destination the
// victim has a route to, over a slow link whose queue fills. Its forwarded
// envelopes take at most their share of that queue: an honest neighbour's
// envelopes and the victim's own messages still go out at once, and
// forwarded "control" envelopes (which travel at control priority) cannot
// push the victim's own messages out of the queue.
func TestAttackQueueShare(t *testing.T) {
	ids := quotaIdentities()
	dest := ids[3]
	v := newVictim(t, envelopes) // own messages identified as envelopes below
	const slowLink routing.LinkID = 4
	// A transport that takes one frame at a time and is still busy: what
	// is queued stays queued.
	v.step(routing.LinkUp{Link: routing.LinkInfo{ID: slowLink, Kind: routing.LinkTCP, Peer: dest.Address(),
		Window: 1, QueueBytes: 256 << 10}})
	v.step(routing.Resolved{Dest: dest.Address(), Link: slowLink, Identity: dest.Public()})

	g := newFloodGen(t, ids[1], false, 8)
	g.dest = dest.Address()
	v.flood(g, attackerLink, 64, 0)

	before := v.eng.Counters()
	v.honestSend(4, dest.Address(), floodPayload)
	if got := v.eng.Counters().Forwarded - before.Forwarded; got != 4 {
		t.Errorf("honest neighbour's envelopes forwarded at once: %d of 4", got)
	}

	evBefore := len(v.events)
	var own []protocol.MessageID
	for i := range 4 {
		v.step(routing.SendRequest{Ref: uint64(2000 + i), Dest: dest.Address(), Body: make([]byte, 8<<10)})
	}
	for _, ev := range v.events[evBefore:] {
		if ev.Kind != routing.EventAccepted || ev.Status != routing.StatusRouted {
			t.Errorf("own message %d: %v, status %v (%v)", ev.Ref, ev.Kind, ev.Status, ev.Err)
		}
		own = append(own, ev.ID)
	}

	// Forwarded control envelopes must not displace the own messages.
	g.typ = protocol.TypeControl
	v.flood(g, attackerLink, 32, 0)

	sent := map[protocol.MessageID]bool{}
	for range 200 {
		_ = v.eng.Step(v.now, routing.TxDone{Link: slowLink, Frames: 1})
		rd := v.eng.Ready()
		for _, tx := range rd.Transmits {
			if id, err := protocol.EnvelopeID(tx.Frame); err == nil && tx.Link == slowLink {
				sent[id] = true
			}
		}
		v.eng.Advance()
	}
	for i, id := range own {
		if !sent[id] {
			t.Errorf("own message %d (%v) did not go out at once: refused by, or pushed out of, a queue full of forwarded traffic", i, id)
		}
	}
	c := v.eng.Counters()
	t.Logf("forwarded %d, queue drops %d, deferred %d, custody %d", c.Forwarded, c.QueueDrops, c.QueueDeferred, c.CustodyCount)
}

// TestRestoreOverQuota: a store written without the quotas (by an older
// version, or with larger ones configured), full of one neighbour's junk,
// is restored within the quotas: forwarded records beyond them are
// deleted, and the node's own messages have their reserve again.
func TestRestoreOverQuota(t *testing.T) {
	v := newVictim(t, func(c *routing.Config) {
		c.CustodyOwnReserve, c.CustodyMaxPerNeighbour, c.CustodyMaxPerSource = 1, 64<<20, 64<<20
	})
	v.flood(newFloodGen(t, quotaIdentities()[1], false, 9), attackerLink, floodCount, 0)
	if got := v.sendOwn(4, 4<<10, false); got == 4 {
		t.Fatalf("without quotas the flood left room for the victim's messages: the test shows nothing")
	}
	full := v.eng.Counters()
	v.cfg.CustodyOwnReserve, v.cfg.CustodyMaxPerNeighbour, v.cfg.CustodyMaxPerSource = 0, 0, 0
	v.now = v.now.Add(time.Minute)
	v.restart()
	c := v.eng.Counters()
	t.Logf("before the restart %d records (%d bytes), after %d (%d bytes), %d deleted", full.CustodyCount, full.CustodyBytes,
		c.CustodyCount, c.CustodyBytes, c.CustodyRestoreDropped)
	if c.CustodyRestoreDropped == 0 || c.CustodyCount+c.CustodyRestoreDropped != full.CustodyCount {
		t.Errorf("restored %d and deleted %d of %d records", c.CustodyCount, c.CustodyRestoreDropped, full.CustodyCount)
	}
	if c.CustodyBytes > 3*(64<<20)/4 {
		t.Errorf("%d bytes of forwarded custody restored, more than the forwarded pool", c.CustodyBytes)
	}
	stored := 0
	for k := range v.store {
		if len(k) > 2 && k[:2] == "c/" {
			stored++
		}
	}
	if want := int(c.CustodyCount); stored != want {
		t.Errorf("%d custody records left in the store, want the %d kept", stored, want)
	}
	if got := v.sendOwn(16, 4<<10, false); got != 16 {
		t.Errorf("victim's own sends accepted after the restart: %d of 16", got)
	}
}
