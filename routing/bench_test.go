package routing_test

import (
	"container/heap"
	"crypto/ed25519"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// Benchmarks for docs/performance.md. Run:
//
//	go test ./routing -run '^$' -bench . -benchmem
//
// BenchmarkForwardEnvelope and BenchmarkRawEd25519Verify run side by side:
// the goal is a forwarding rate of at least 0.8x the raw verify rate, so
// read off RawEd25519Verify ns/op divided by ForwardEnvelope ns/op.

// benchIdentities are the benchmarks' identities, made once: X-Wing key
// generation is slow.
var benchIdentities = sync.OnceValue(func() []*protocol.Identity {
	ids := make([]*protocol.Identity, 2100)
	for i := range ids {
		id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes("bench", uint64(i), 1)))
		if err != nil {
			panic(err)
		}
		ids[i] = id
	}
	return ids
})

func benchEngine(b *testing.B, id *protocol.Identity, now time.Time, tweak func(*routing.Config)) *routing.Engine {
	cfg := routing.Config{Identity: id, Rand: rand.NewChaCha8(seedBytes("bench-engine", 1, 2))}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := routing.New(cfg, now, nil)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func drainEngine(e *routing.Engine) (rd routing.Ready) {
	for e.HasReady() {
		r := e.Ready()
		rd.Transmits = append(rd.Transmits, r.Transmits...)
		rd.Deliveries = append(rd.Deliveries, r.Deliveries...)
		e.Advance()
	}
	return rd
}

const benchPayload = 256

// signedEnvelopes builds n distinct envelopes with 256-byte clear payloads
// from src to dest, signed by src.
func signedEnvelopes(b *testing.B, n int, src *protocol.Identity, dest protocol.Address, now time.Time) [][]byte {
	out := make([][]byte, n)
	ts := protocol.TimestampOf(now)
	payload := make([]byte, benchPayload)
	for i := range out {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, Created: ts, Expires: ts + 7*24*3600, Dest: dest}
		h.ID[0], h.ID[1], h.ID[2], h.ID[15] = byte(i>>16), byte(i>>8), byte(i), 0xbe
		env, err := protocol.SignEnvelope(src, h, payload)
		if err != nil {
			b.Fatal(err)
		}
		if out[i], err = env.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkForwardEnvelope: one engine in the middle of two IP links
// forwards distinct signed envelopes (256-byte payload) from a neighbour to
// the other: decode, duplicate check, time and signature check, hop count,
// route lookup, queueing, Ready and Advance. One op is one envelope.
func BenchmarkForwardEnvelope(b *testing.B) {
	ids := benchIdentities()
	mid, src, dst := ids[0], ids[1], ids[2]
	now := epoch
	fresh := func() *routing.Engine {
		e := benchEngine(b, mid, now, nil)
		_ = e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: src.Address()}})
		_ = e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 2, Kind: routing.LinkIP, Peer: dst.Address()}})
		drainEngine(e)
		return e
	}
	e := fresh()
	// Every envelope the engine sees is new to it: after each pass over the
	// pool a fresh engine takes over (outside the timer), since an engine
	// that saw an envelope before would only re-check its times (verify
	// once per node) and the benchmark would not measure verification.
	pool := signedEnvelopes(b, 4096, src, dst.Address(), now)
	var forwarded uint64
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i > 0 && i%len(pool) == 0 {
			b.StopTimer()
			forwarded += e.Counters().Forwarded
			e = fresh()
			b.StartTimer()
		}
		if err := e.Step(now, routing.FrameReceived{Link: 1, Frame: pool[i%len(pool)]}); err != nil {
			b.Fatal(err)
		}
		rd := e.Ready()
		if len(rd.Transmits) != 1 || rd.Transmits[0].Link != 2 {
			b.Fatalf("envelope %d: %d transmits", i, len(rd.Transmits))
		}
		e.Advance()
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	forwarded += e.Counters().Forwarded
	if forwarded != uint64(b.N) {
		b.Fatalf("forwarded %d of %d", forwarded, b.N)
	}
	if c := e.Counters(); c.EnvelopeVerifySkipped != 0 {
		b.Fatalf("%d envelopes skipped verification", c.EnvelopeVerifySkipped)
	}
}

// BenchmarkRawEd25519Verify is the baseline of BenchmarkForwardEnvelope: a
// bare Ed25519 verification of as many bytes as an envelope with a 256-byte
// payload signs.
func BenchmarkRawEd25519Verify(b *testing.B) {
	ids := benchIdentities()
	raw := signedEnvelopes(b, 1, ids[1], ids[2].Address(), epoch)[0]
	// Signed: everything but the hop count and the signature itself.
	msg := make([]byte, len(raw)-1-ed25519.SignatureSize)
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const benchTableSize = 2000

// benchAdverts builds adverts for benchTableSize distinct destinations, as a
// neighbour sends them: with the destination's KEM key (IP) or compact
// (LoRa).
func benchAdverts(b *testing.B, withKey bool, fwd protocol.Address, now time.Time) [][]byte {
	ids := benchIdentities()[100 : 100+benchTableSize]
	out := make([][]byte, len(ids))
	for i, id := range ids {
		a, err := protocol.NewAnnounce(id, protocol.AnnounceOptions{Sequence: 1, Timestamp: protocol.TimestampOf(now), IncludeKEMKey: withKey})
		if err != nil {
			b.Fatal(err)
		}
		a.HopCount = 1
		raw, err := a.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = protocol.AppendAdvert(nil, fwd, 16, raw)
	}
	return out
}

// BenchmarkTableMemory measures the heap a routing table entry costs: an
// engine hears verified adverts for 2,000 distinct destinations from one
// neighbour, and the heap growth is divided by the number of routes. With
// the KEM key (as on IP links, 1,216 bytes of it) and compact (LoRa).
func BenchmarkTableMemory(b *testing.B) {
	for _, v := range []struct {
		name    string
		withKey bool
	}{{"with-kem-key", true}, {"compact", false}} {
		b.Run(v.name, func(b *testing.B) {
			ids := benchIdentities()
			now := epoch
			adverts := benchAdverts(b, v.withKey, ids[1].Address(), now)
			var perEntry float64
			for b.Loop() {
				b.StopTimer()
				before := heapInUse()
				b.StartTimer()
				e := benchEngine(b, ids[0], now, nil)
				_ = e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: ids[1].Address()}})
				for _, a := range adverts {
					if err := e.Step(now, routing.FrameReceived{Link: 1, Frame: a}); err != nil {
						b.Fatal(err)
					}
					drainEngine(e)
				}
				b.StopTimer()
				after := heapInUse()
				routes := e.Counters().Routes
				if routes != benchTableSize+1 {
					b.Fatalf("%d routes", routes)
				}
				perEntry = float64(after-before) / float64(routes)
				runtime.KeepAlive(e)
				b.StartTimer()
			}
			b.ReportMetric(perEntry, "B/entry")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkCustodyMemory measures the heap a custody record costs: an
// engine takes 2,000 forwarded envelopes (256-byte payloads) for a
// destination it has no route to. B/record is the whole cost; B/overhead
// leaves out the envelope's own bytes.
func BenchmarkCustodyMemory(b *testing.B) {
	ids := benchIdentities()
	now := epoch
	envs := signedEnvelopes(b, benchTableSize, ids[1], ids[3].Address(), now)
	var perRec float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		e := benchEngine(b, ids[0], now, nil)
		_ = e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: ids[1].Address()}})
		for _, env := range envs {
			if err := e.Step(now, routing.FrameReceived{Link: 1, Frame: env}); err != nil {
				b.Fatal(err)
			}
			drainEngine(e)
		}
		b.StopTimer()
		after := heapInUse()
		c := e.Counters()
		if c.CustodyCount != benchTableSize {
			b.Fatalf("%d records in custody", c.CustodyCount)
		}
		perRec = float64(after-before) / float64(c.CustodyCount)
		runtime.KeepAlive(e)
		b.StartTimer()
	}
	b.ReportMetric(perRec, "B/record")
	b.ReportMetric(perRec-float64(len(envs[0])), "B/overhead")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFloodRGG floods broadcasts through a 100-node random geometric
// graph of LoRa radios (see geoNet) and reports transmissions per delivery
// (one node receiving one broadcast), transmissions per broadcast and the
// delivery ratio, for managed flooding at the defaults (a rebroadcast waits
// its place in a window of FloodWindow airtimes, far neighbours first by
// SNR, and is cancelled after hearing FloodCancelAfter neighbours rebroadcast
// or one from close by, FloodCloseMargin above the SNR floor) and naive flooding
// (every node rebroadcasts every new frame once, after the same delay:
// nothing cancels), on three media: ideal (no
// collisions), aloha (overlapping frames collide, no carrier sense) and
// csma (a radio waits for a clear channel before it transmits, as RNode and
// Meshtastic firmware do; hidden terminals still collide). One op is one
// whole simulated run of 20 broadcasts.
func BenchmarkFloodRGG(b *testing.B) {
	for _, m := range []geoMedium{mediumIdeal, mediumAloha, mediumCSMA} {
		for _, naive := range []bool{false, true} {
			name := "managed"
			if naive {
				name = "naive"
			}
			b.Run(name+"/"+m.String(), func(b *testing.B) {
				var res floodResult
				for b.Loop() {
					res = runFlood(b, 100, 20, 1, naive, m)
				}
				b.ReportMetric(float64(res.tx)/float64(max(res.deliveries, 1)), "tx/delivery")
				b.ReportMetric(float64(res.tx)/float64(res.broadcasts), "tx/broadcast")
				b.ReportMetric(float64(res.deliveries)/float64(res.broadcasts*(res.nodes-1)), "delivery-ratio")
			})
		}
	}
}

// geoMedium is how a geoNet's radios share the channel.
type geoMedium int

const (
	mediumIdeal geoMedium = iota // every frame in range arrives
	mediumAloha                  // overlapping frames collide; no carrier sense
	mediumCSMA                   // collisions, and radios wait for a clear channel
)

func (m geoMedium) String() string { return [...]string{"ideal", "aloha", "csma"}[m] }

// geoNet is a shared radio medium over nodes placed in the unit square:
// every node has ONE LoRa link (ID 1), and a frame it transmits reaches the
// nodes within radius after its airtime, with an SNR that falls with
// log-distance path loss to the SF9 floor (-12.5 dB) at the edge of the
// range (as meshsim's LoRa model, without shadowing). With collisions, a frame is
// lost at a receiver that was transmitting or receiving another frame at
// any time during it (no capture effect). With carrier sense, a radio that
// hears a frame on the air (or is sending one) starts its own only after
// the channel cleared, plus a random backoff of up to half an airtime.
//
// Only channel frames are carried: advertisements and other control frames
// are taken off the link at once (TxDone) without reaching anyone or using
// airtime, so the counts are those of flooding alone.
type geoNet struct {
	tb      testing.TB
	nodes   []*geoNode
	radius  float64
	bitrate int
	medium  geoMedium
	rng     *rand.Rand
	now     time.Time
	q       geoQueue
	seq     uint64
	tx      int
}

type geoNode struct {
	i      int
	x, y   float64
	eng    *routing.Engine
	nbrs   []geoNbr
	txEnd  time.Time
	rx     []*geoRx // receptions under way
	wakeAt time.Time
	wgen   uint64
	got    int // broadcasts delivered
}

type geoNbr struct {
	n   *geoNode
	snr float64
}

type geoRx struct {
	end  time.Time
	lost bool
}

type geoEvent struct {
	at    time.Time
	seq   uint64
	node  *geoNode
	tick  bool
	gen   uint64
	rx    *geoRx
	frame []byte
	snr   float64
	done  bool // TxDone
	start bool // a frame waiting for a clear channel
}

type geoQueue []*geoEvent

func (q geoQueue) Len() int { return len(q) }
func (q geoQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q geoQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *geoQueue) Push(x any)   { *q = append(*q, x.(*geoEvent)) }
func (q *geoQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type floodResult struct {
	nodes, broadcasts, deliveries, tx int
}

// runFlood builds an n-node random geometric graph from seed (connected,
// average degree about 10) and floods k broadcasts from random nodes, two
// minutes apart.
func runFlood(tb testing.TB, n, k int, seed uint64, naive bool, medium geoMedium) floodResult {
	var policy func(*routing.Config)
	if naive {
		policy = floodNaive
	}
	return runFloodPolicy(tb, n, k, seed, policy, medium)
}

// floodNaive makes every node rebroadcast every new frame once (after the
// same random delay as managed flooding): nothing cancels.
func floodNaive(c *routing.Config) {
	c.FloodCancelAfter = 1 << 20
	c.FloodCloseMargin = -1
}

// runFloodPolicy is runFlood with policy applied to every node's Config
// (nil: the defaults, managed flooding).
func runFloodPolicy(tb testing.TB, n, k int, seed uint64, policy func(*routing.Config), medium geoMedium) floodResult {
	rng := rand.New(rand.NewPCG(seed, 0x6e6574))
	g := &geoNet{
		tb: tb, radius: math.Sqrt(10 / (math.Pi * float64(n))), bitrate: 1760, medium: medium,
		rng: rand.New(rand.NewPCG(seed, 0x637361)), now: epoch,
	}
	for {
		g.nodes = g.nodes[:0]
		for i := range n {
			g.nodes = append(g.nodes, &geoNode{i: i, x: rng.Float64(), y: rng.Float64()})
		}
		if g.connect() {
			break
		}
	}
	ids := benchIdentities()
	key, err := protocol.NewChannelKey(rand.NewChaCha8(seedBytes("flood", seed, 3)))
	if err != nil {
		tb.Fatal(err)
	}
	for _, nd := range g.nodes {
		cfg := routing.Config{
			Identity:         ids[nd.i],
			Rand:             rand.NewChaCha8(seedBytes("flood", seed+uint64(nd.i), 4)),
			AnnounceInterval: 24 * time.Hour,
		}
		if policy != nil {
			policy(&cfg)
		}
		if nd.eng, err = routing.New(cfg, g.now, nil); err != nil {
			tb.Fatal(err)
		}
		g.step(nd, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkLoRa, Window: 1, Bitrate: g.bitrate}})
		g.step(nd, routing.JoinChannel{Key: key})
	}
	g.run(time.Minute)
	g.tx = 0
	for i := range k {
		src := g.nodes[rng.IntN(n)]
		g.step(src, routing.Broadcast{Ref: uint64(i), Channel: key, HopLimit: protocol.MaxChannelHops, Body: make([]byte, 40)})
		g.run(2 * time.Minute)
	}
	res := floodResult{nodes: n, broadcasts: k, tx: g.tx}
	for _, nd := range g.nodes {
		res.deliveries += nd.got
	}
	return res
}

// connect computes the neighbours within radius and reports whether the
// graph is connected.
func (g *geoNet) connect() bool {
	for _, a := range g.nodes {
		a.nbrs = nil
		for _, b := range g.nodes {
			if d := math.Hypot(a.x-b.x, a.y-b.y); a != b && d <= g.radius {
				// Log-distance path loss (exponent 2.08, as the LoRa model
				// of meshsim): the SF9 floor of -12.5 dB at the edge of the
				// range, 6.3 dB more at half of it, at most +10 dB.
				snr := min(-12.5+20.8*math.Log10(g.radius/max(d, 1e-9)), 10)
				a.nbrs = append(a.nbrs, geoNbr{n: b, snr: snr})
			}
		}
	}
	seen := map[*geoNode]bool{g.nodes[0]: true}
	todo := []*geoNode{g.nodes[0]}
	for len(todo) > 0 {
		a := todo[0]
		todo = todo[1:]
		for _, nb := range a.nbrs {
			if !seen[nb.n] {
				seen[nb.n] = true
				todo = append(todo, nb.n)
			}
		}
	}
	return len(seen) == len(g.nodes)
}

func (g *geoNet) push(e *geoEvent) {
	g.seq++
	e.seq = g.seq
	heap.Push(&g.q, e)
}

func (g *geoNet) step(nd *geoNode, in routing.Input) {
	_ = nd.eng.Step(g.now, in)
	g.process(nd)
}

func (g *geoNet) process(nd *geoNode) {
	for nd.eng.HasReady() {
		rd := nd.eng.Ready()
		for _, tx := range rd.Transmits {
			g.transmit(nd, tx.Frame)
		}
		for _, d := range rd.Deliveries {
			if d.Broadcast {
				nd.got++
			}
		}
		nd.eng.Advance()
	}
	w := nd.eng.NextWake()
	if !nd.wakeAt.IsZero() && !w.Before(nd.wakeAt) && nd.wakeAt.After(g.now) {
		return
	}
	nd.wgen++
	nd.wakeAt = w
	g.push(&geoEvent{at: w, node: nd, tick: true, gen: nd.wgen})
}

func (g *geoNet) airtime(n int) time.Duration {
	return time.Duration(int64(n) * 8 * int64(time.Second) / int64(g.bitrate))
}

// busyUntil is when the channel around nd clears, or zero if it is clear.
func (g *geoNet) busyUntil(nd *geoNode) time.Time {
	var t time.Time
	if nd.txEnd.After(g.now) {
		t = nd.txEnd
	}
	for _, rx := range nd.rx {
		if rx.end.After(g.now) && rx.end.After(t) {
			t = rx.end
		}
	}
	return t
}

func (g *geoNet) transmit(from *geoNode, frame []byte) {
	k, _ := protocol.PeekKind(frame)
	if k != protocol.KindChannel && k != protocol.KindChannelSigned {
		g.push(&geoEvent{at: g.now, node: from, done: true})
		return
	}
	air := g.airtime(len(frame))
	if g.medium == mediumCSMA {
		if busy := g.busyUntil(from); !busy.IsZero() {
			backoff := time.Duration(g.rng.Int64N(int64(air/2) + 1))
			g.push(&geoEvent{at: busy.Add(backoff), node: from, start: true, frame: frame})
			return
		}
	}
	g.tx++
	end := g.now.Add(air)
	g.push(&geoEvent{at: end, node: from, done: true})
	collide := g.medium != mediumIdeal
	// Half duplex: what the sender was receiving is lost.
	if collide {
		for _, rx := range from.rx {
			if rx.end.After(g.now) {
				rx.lost = true
			}
		}
	}
	from.txEnd = end
	for _, nb := range from.nbrs {
		to := nb.n
		rx := &geoRx{end: end}
		if collide {
			if to.txEnd.After(g.now) {
				rx.lost = true
			}
			live := to.rx[:0]
			for _, o := range to.rx {
				if o.end.After(g.now) {
					o.lost, rx.lost = true, true
					live = append(live, o)
				}
			}
			to.rx = append(live, rx)
		}
		g.push(&geoEvent{at: end, node: to, rx: rx, frame: frame, snr: nb.snr})
	}
}

func (g *geoNet) run(d time.Duration) {
	end := g.now.Add(d)
	for g.q.Len() > 0 && !g.q[0].at.After(end) {
		e := heap.Pop(&g.q).(*geoEvent)
		g.now = e.at
		switch {
		case e.tick:
			if e.gen != e.node.wgen {
				continue
			}
			e.node.wakeAt = time.Time{}
			e.node.eng.Tick(g.now)
			g.process(e.node)
		case e.start:
			g.transmit(e.node, e.frame)
		case e.done:
			g.step(e.node, routing.TxDone{Link: 1, Frames: 1})
		case !e.rx.lost:
			g.step(e.node, routing.FrameReceived{Link: 1, Frame: e.frame, SNR: e.snr, HasSNR: true})
		}
	}
	g.now = end
}

// sealedEnvelopes builds n distinct envelopes sealed from src to dest
// (256-byte body, receipt wanted), as SendRequest makes them.
func sealedEnvelopes(b *testing.B, n int, src, dest *protocol.Identity, sealedSender bool, now time.Time) [][]byte {
	out := make([][]byte, n)
	ts := protocol.TimestampOf(now)
	rng := rand.NewChaCha8(seedBytes("sealed-bench", uint64(n), 4))
	for i := range out {
		h := protocol.Header{Type: protocol.TypeMessage, HopLimit: 16, Created: ts, Expires: ts + 7*24*3600, Dest: dest.Address(), WantReceipt: true}
		h.ID[0], h.ID[1], h.ID[2], h.ID[15] = byte(i>>16), byte(i>>8), byte(i), 0x5e
		env, err := protocol.SealEnvelope(rng, src, dest.Public(), h, make([]byte, benchPayload), protocol.SealOptions{SealedSender: sealedSender})
		if err != nil {
			b.Fatal(err)
		}
		if out[i], err = env.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkDestinationCost is what a destination spends per message it
// receives from a neighbour: a new sealed message (decode, duplicate check,
// signature check, decapsulation and decryption, delivery, a signed receipt
// back), and a copy of one already delivered (an origin's retry or a replay).
// One op is one envelope.
func BenchmarkDestinationCost(b *testing.B) {
	ids := benchIdentities()
	me, src := ids[0], ids[1]
	now := epoch
	fresh := func() *routing.Engine {
		e := benchEngine(b, me, now, nil)
		_ = e.Step(now, routing.LinkUp{Link: routing.LinkInfo{ID: 1, Kind: routing.LinkIP, Peer: src.Address()}})
		drainEngine(e)
		return e
	}
	b.Run("new-sealed", func(b *testing.B) {
		pool := sealedEnvelopes(b, 2048, src, me, false, now)
		e := fresh()
		delivered := 0
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			if i > 0 && i%len(pool) == 0 {
				b.StopTimer()
				e = fresh()
				b.StartTimer()
			}
			_ = e.Step(now, routing.FrameReceived{Link: 1, Frame: pool[i%len(pool)]})
			delivered += len(drainEngine(e).Deliveries)
			i++
		}
		if delivered != b.N {
			b.Fatalf("delivered %d of %d", delivered, b.N)
		}
	})
	for _, ss := range []bool{false, true} {
		name := "duplicate-sealed"
		if ss {
			name = "duplicate-sealed-sender"
		}
		b.Run(name, func(b *testing.B) {
			raw := sealedEnvelopes(b, 1, src, me, ss, now)[0]
			e := fresh()
			_ = e.Step(now, routing.FrameReceived{Link: 1, Frame: raw})
			if len(drainEngine(e).Deliveries) != 1 {
				b.Fatal("not delivered")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = e.Step(now, routing.FrameReceived{Link: 1, Frame: raw})
				if len(drainEngine(e).Deliveries) != 0 {
					b.Fatal("delivered twice")
				}
			}
		})
	}
}
