package routing_test

import (
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// FuzzEngineStep reads its input as a program of operations (links going up
// and down with arbitrary IDs and properties, frames of arbitrary bytes,
// TxDone, sends, broadcasts, time passing, restarts ...) and runs it against
// one engine, A. A second engine, B, is A's neighbour on links 1 (IP) and 2
// (LoRa): it hears what A transmits there and answers, and its frames, like
// the real frames captured from a two-node run, can be fed back to A intact
// or mutated. That lets the fuzzer reach deep states (routes, custody, hop
// acks, reassembly) that random bytes alone never would.
//
// After every operation it checks that the engine did not panic, that Ready
// and Advance work, that no transmitted frame exceeds its link's MTU or goes
// to a link that is down, that no route uses a link that is down, that no
// message is delivered (or reported delivered) twice, even across
// restarts, that the counters never decrease (the gauges at the end of
// Counters excepted), and that NextWake is never before now. At the end it
// runs the engine's timers dry and checks that NextWake does not stay at
// one instant (a busy loop).
//
// Run: go test ./routing -run '^$' -fuzz FuzzEngineStep -fuzztime 30s -fuzzminimizetime 10x
// (the default minimization budget of 60 s per new input would take most of
// a short run: a program runs many engine steps).
func FuzzEngineStep(f *testing.F) {
	fx := fuzzFixture()
	for _, seed := range fx.seeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		runProgram(t, fx, prog)
	})
}

// Operations of a fuzz program. Each is one byte (modulo numOps) followed
// by its arguments; a program that ends early reads zeros.
const (
	opLinkUp    = iota // id, kind, flags, mtu, bitrate, queue, cost
	opLinkDown         // id
	opFrame            // id, len u16, bytes, snr
	opTxDone           // id, frames (int8)
	opSend             // dest, len u16, ttl, flags, type
	opBroadcast        // channel, hop limit, signed, len
	opTick             // amount u16, unit
	opPoolFrame        // index u16, mutation, position u16, value, id
	opPeerSend         // B sends to A: len
	opJoin             // channel (or scope it)
	opLeave            // channel
	opResolved         // dest, id, identity, ttl
	opGossip           // index u16, mutation, position u16, value
	opRestart          // A restarts from what it persisted
	opStale            // a Step with a time in the past: dest for a send
	numOps
)

// fixture is what all fuzz runs share: identities, channel keys and the
// frames captured from a two-node run.
type fixture struct {
	a, b, c *protocol.Identity
	key     protocol.ChannelKey // joined by both in the capture run
	key2    protocol.ChannelKey
	frames  [][]byte // captured real frames, both directions
	seeds   [][]byte
}

var fuzzFixture = sync.OnceValue(func() *fixture {
	fx := &fixture{}
	mk := func(name string) *protocol.Identity {
		id, err := protocol.NewIdentity(rand.NewChaCha8(seedBytes(name, 7, 1)))
		if err != nil {
			panic(err)
		}
		return id
	}
	fx.a, fx.b, fx.c = mk("fuzz-a"), mk("fuzz-b"), mk("fuzz-c")
	var err error
	if fx.key, err = protocol.NewChannelKey(rand.NewChaCha8(seedBytes("key", 7, 1))); err != nil {
		panic(err)
	}
	if fx.key2, err = protocol.NewChannelKey(rand.NewChaCha8(seedBytes("key2", 7, 1))); err != nil {
		panic(err)
	}
	fx.capture()
	fx.makeSeeds()
	return fx
})

func fuzzConfig(id *protocol.Identity, seed string) routing.Config {
	return routing.Config{
		Identity:         id,
		Rand:             rand.NewChaCha8(seedBytes(seed, 7, 2)),
		AnnounceInterval: 10 * time.Minute,
		RetryBase:        10 * time.Second,
		RetryMax:         2 * time.Minute,
	}
}

// fuzzConfigA is A's configuration: a mailbox, so that custody offers
// reach deep.
func fuzzConfigA(fx *fixture) routing.Config {
	cfg := fuzzConfig(fx.a, "a")
	cfg.Mailbox, cfg.Capabilities = true, protocol.CapMailbox
	// A's own messages stay sealed envelopes so that the captured frames
	// hold both unicast forms.
	cfg.NoSessions = true
	return cfg
}

// fuzzConfigB is B's configuration: its own messages go over route
// sessions, so the captured frames (and A's inputs) include session inits,
// accepts, data frames and acknowledgements.
func fuzzConfigB(fx *fixture) routing.Config {
	return fuzzConfig(fx.b, "b")
}

// pairIP and pairLoRa are the links between A and B.
const (
	pairIP   routing.LinkID = 1
	pairLoRa routing.LinkID = 2
)

func pairLinks(peer protocol.Address) []routing.LinkInfo {
	return []routing.LinkInfo{
		{ID: pairIP, Kind: routing.LinkIP, Peer: peer},
		{ID: pairLoRa, Kind: routing.LinkLoRa, Window: 1},
	}
}

// capture runs A and B through adverts, a message each way, a broadcast, a
// path request and a LoRa-only exchange (hop frames, fragments, hop acks),
// and keeps every frame they transmit.
func (fx *fixture) capture() {
	now := epoch
	a, _ := routing.New(fuzzConfigA(fx), now, nil)
	b, _ := routing.New(fuzzConfigB(fx), now, nil)
	seen := map[string]bool{}
	reasm := protocol.NewReassembler(protocol.ReassemblerConfig{})
	var keep func(f []byte)
	keep = func(f []byte) {
		if seen[string(f)] {
			return
		}
		seen[string(f)] = true
		fx.frames = append(fx.frames, slices.Clone(f))
		// Keep what fragments carry (hop frames) and what hop frames
		// carry (envelopes) too.
		switch k, _ := protocol.PeekKind(f); k {
		case protocol.KindFragment:
			if obj, _ := reasm.Add(now, "capture", f); obj != nil {
				keep(obj)
			}
		case protocol.KindHop:
			if _, inner, err := protocol.ParseHop(f); err == nil {
				keep(inner)
			}
		}
	}
	type pending struct {
		to *routing.Engine
		in routing.Input
	}
	var q []pending
	drain := func(from, to *routing.Engine) {
		for from.HasReady() {
			rd := from.Ready()
			for _, tx := range rd.Transmits {
				keep(tx.Frame)
				q = append(q, pending{to, routing.FrameReceived{Link: tx.Link, Frame: tx.Frame}})
				if tx.Link == pairLoRa {
					q = append(q, pending{from, routing.TxDone{Link: pairLoRa, Frames: 1}})
				}
			}
			for _, p := range rd.Publish {
				keep(p.Frame)
			}
			from.Advance()
		}
	}
	pump := func(d time.Duration) {
		end := now.Add(d)
		for {
			drain(a, b)
			drain(b, a)
			if len(q) > 0 {
				p := q[0]
				q = q[1:]
				_ = p.to.Step(now, p.in)
				continue
			}
			w := a.NextWake()
			if bw := b.NextWake(); bw.Before(w) {
				w = bw
			}
			if w.After(end) {
				now = end
				return
			}
			if w.After(now) {
				now = w
			}
			a.Tick(now)
			b.Tick(now)
		}
	}
	for _, info := range pairLinks(fx.b.Address()) {
		_ = a.Step(now, routing.LinkUp{Link: info})
	}
	for _, info := range pairLinks(fx.a.Address()) {
		_ = b.Step(now, routing.LinkUp{Link: info})
	}
	pump(time.Minute)
	_ = a.Step(now, routing.JoinChannel{Key: fx.key})
	_ = b.Step(now, routing.JoinChannel{Key: fx.key})
	_ = a.Step(now, routing.Broadcast{Ref: 1, Channel: fx.key, Body: []byte("to the channel")})
	_ = b.Step(now, routing.Broadcast{Ref: 1, Channel: fx.key, Body: []byte("signed"), Signed: true})
	_ = a.Step(now, routing.SendRequest{Ref: 2, Dest: fx.b.Address(), Body: []byte("hello b")})
	_ = b.Step(now, routing.SendRequest{Ref: 2, Dest: fx.a.Address(), Body: []byte("hello a"), SealedSender: true})
	_ = a.Step(now, routing.SendRequest{Ref: 3, Dest: fx.c.Address(), Body: []byte("hello c")})
	// B reaches C through A (an outside lookup says so), and A has no
	// route to C: A keeps the message in custody.
	_ = b.Step(now, routing.Resolved{Dest: fx.c.Address(), Link: pairIP, Identity: fx.c.Public()})
	_ = b.Step(now, routing.SendRequest{Ref: 3, Dest: fx.c.Address(), Body: []byte("hello c, from b")})
	pump(time.Minute)
	// Only the radio is left: hop frames, fragments, hop acks; B loses
	// its route to C and offers the message to the mailbox, A.
	_ = a.Step(now, routing.LinkDown{Link: pairIP})
	_ = b.Step(now, routing.LinkDown{Link: pairIP})
	_ = a.Step(now, routing.SendRequest{Ref: 4, Dest: fx.b.Address(), Body: []byte("over the air")})
	_ = b.Step(now, routing.SendRequest{Ref: 4, Dest: fx.a.Address(), Body: []byte("over the air too")})
	pump(30 * time.Minute)
}

// progBuilder writes fuzz programs for the seed corpus.
type progBuilder []byte

func (p *progBuilder) op(op int, args ...byte) { *p = append(append(*p, byte(op)), args...) }
func u16(v int) []byte                         { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

func (p *progBuilder) linkUps() {
	p.op(opLinkUp, byte(pairIP), byte(routing.LinkIP), 16, 0, 0, 0, 0)
	p.op(opLinkUp, byte(pairLoRa), byte(routing.LinkLoRa), 1<<2, 0, 0, 0, 0)
}

// pool feeds A frame i of the pool on link, mutated by mut at pos.
func (p *progBuilder) pool(i int, link routing.LinkID, mut byte, pos int, val byte) {
	p.op(opPoolFrame, append(append(append(u16(i), mut), u16(pos)...), val, byte(link))...)
}

func (p *progBuilder) frame(link routing.LinkID, f []byte) {
	p.op(opFrame, append(append([]byte{byte(link)}, u16(len(f))...), append(slices.Clone(f), 0)...)...)
}

func (fx *fixture) makeSeeds() {
	// One program per captured frame, on each link, and a frame alone.
	for i, f := range fx.frames {
		var p progBuilder
		p.linkUps()
		p.frame(pairIP, f)
		p.frame(pairLoRa, f)
		p.op(opTick, append(u16(90), 1)...)
		fx.seeds = append(fx.seeds, p)
		var q progBuilder
		q.linkUps()
		q.pool(i, pairLoRa, 0, 0, 0)
		fx.seeds = append(fx.seeds, q)
	}
	// A conversation: both links, messages both ways, a broadcast, time.
	var p progBuilder
	p.linkUps()
	p.op(opJoin, 0)
	p.op(opTick, append(u16(5), 1)...)
	p.op(opSend, append(append([]byte{0}, u16(40)...), 0, 0, 0)...)
	p.op(opPeerSend, u16(100)...)
	p.op(opBroadcast, 0, 0, 1, 20)
	p.op(opTick, append(u16(30), 1)...)
	p.op(opLinkDown, byte(pairIP))
	p.op(opSend, append(append([]byte{0}, u16(300)...), 0, 0, 0)...)
	p.op(opTick, append(u16(10), 2)...)
	p.op(opRestart)
	p.op(opTick, append(u16(10), 2)...)
	for i := range 8 {
		p.pool(i*7, pairLoRa, 1, 5, 0xff)
	}
	fx.seeds = append(fx.seeds, p)
	// A flooded frame heard again and again on the radio: the pending
	// rebroadcast is cancelled.
	for i, f := range fx.frames {
		if k, _ := protocol.PeekKind(f); k == protocol.KindChannel || k == protocol.KindChannelSigned {
			var p progBuilder
			p.linkUps()
			for range 3 {
				p.pool(i, pairLoRa, 0, 0, 0)
			}
			p.op(opTick, append(u16(5), 1)...)
			fx.seeds = append(fx.seeds, p)
		}
	}
	// Messages that outlive their TTL, in A's custody and in B's.
	var x progBuilder
	x.linkUps()
	x.op(opTick, append(u16(2), 1)...)
	x.op(opSend, append(append([]byte{0}, u16(10)...), 2, 0, 1)...)
	x.op(opSend, append(append([]byte{1}, u16(10)...), 2, 0, 1)...)
	x.op(opLinkDown, byte(pairIP))
	x.op(opPeerSend, u16(10)...)
	x.op(opTick, append(u16(2), 3)...)
	fx.seeds = append(fx.seeds, x)
	// Strange links, path requests to the unknown.
	var q progBuilder
	q.op(opLinkUp, 5, 0, 0xff, 3, 3, 3, 9)
	q.op(opLinkUp, 6, byte(routing.LinkTCP), 0x3f, 2, 1, 2, 1)
	q.op(opSend, append(append([]byte{1}, u16(10)...), 0, 0, 0)...)
	q.op(opResolved, 1, 6, 2, 0)
	q.op(opTick, append(u16(1000), 1)...)
	q.op(opStale, 0)
	fx.seeds = append(fx.seeds, q)
	// Path requests with a sequence number, for B (whom A knows), for A
	// itself and for C, asking more and less than there is, and a burst
	// of them from one link (the rate limit).
	var r progBuilder
	r.linkUps()
	r.op(opTick, append(u16(5), 1)...)
	for i, target := range []protocol.Address{fx.b.Address(), fx.a.Address(), fx.c.Address()} {
		for _, seq := range []uint32{0, 1, 2, 1000} {
			pr := protocol.PathRequest{ID: [8]byte{byte(i), byte(seq)}, Target: target, HopLimit: 8, HasSeqno: true, Seqno: seq}
			r.frame(pairIP, pr.AppendTo(nil))
			pr.ID[2], pr.WantKEMKey = 1, true
			r.frame(pairLoRa, pr.AppendTo(nil))
			// Named forwarders on the radio (answers go to them,
			// hop-wrapped): B, and a node nobody knows.
			pr.ID[3], pr.HopCount, pr.Forwarder = 1, 1, fx.b.Address()
			r.frame(pairLoRa, pr.AppendTo(nil))
			pr.ID[3], pr.Forwarder = 2, fx.c.Address()
			r.frame(pairLoRa, pr.AppendTo(nil))
		}
	}
	for i := range 40 {
		pr := protocol.PathRequest{ID: [8]byte{0xee, byte(i)}, Target: fx.c.Address(), HopLimit: 3}
		r.frame(pairIP, pr.AppendTo(nil))
	}
	r.op(opTick, append(u16(40), 1)...)
	fx.seeds = append(fx.seeds, r)
}

// fuzzReader hands out the bytes of a program; past the end it returns zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) more() bool { return len(r.b) > 0 }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) u16() int { return int(r.byte())<<8 | int(r.byte()) }

func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b))
	v := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

// fuzzRun is the state of one program run.
type fuzzRun struct {
	t     *testing.T
	fx    *fixture
	now   time.Time // the latest time given to A
	a, b  *routing.Engine
	cfgA  routing.Config
	store map[string][]byte // what A persisted
	links map[routing.LinkID]routing.LinkInfo
	pool  [][]byte // frames to feed back: captured, then B's
	last  routing.Counters
	gauge int // index of the first gauge field in Counters
	// What A delivered and reported, for exactly once (across restarts).
	delivered map[routing.MessageID]bool
	confirmed map[routing.MessageID]bool
}

func runProgram(t *testing.T, fx *fixture, prog []byte) {
	r := &fuzzReader{b: prog}
	run := &fuzzRun{
		t: t, fx: fx, now: epoch, store: map[string][]byte{},
		links: map[routing.LinkID]routing.LinkInfo{},
		pool:  slices.Clone(fx.frames), gauge: gaugeIndex(),
		delivered: map[routing.MessageID]bool{}, confirmed: map[routing.MessageID]bool{},
	}
	run.cfgA = fuzzConfigA(fx)
	var err error
	if run.a, err = routing.New(run.cfgA, run.now, nil); err != nil {
		t.Fatal(err)
	}
	if run.b, err = routing.New(fuzzConfigB(fx), run.now, nil); err != nil {
		t.Fatal(err)
	}
	for _, info := range pairLinks(fx.a.Address()) {
		_ = run.b.Step(run.now, routing.LinkUp{Link: info})
	}
	_ = run.b.Step(run.now, routing.JoinChannel{Key: fx.key})
	run.drainB()
	for ops := 0; r.more() && ops < 500; ops++ {
		run.op(r)
		run.check()
	}
	run.runDry()
}

func gaugeIndex() int {
	i, k := -1, 0
	var c routing.Counters
	c.Each(func(name string, _ uint64) {
		if name == "Routes" {
			i = k
		}
		k++
	})
	return i
}

var (
	fuzzMTUs     = []int{0, 31, 32, 33, 64, 255, 1500, 1 << 20}
	fuzzBitrates = []int{0, -1, 1, 8, 1760, 100_000_000}
	fuzzQueues   = []int{0, -1, 1, 300, 4096}
	fuzzTTLs     = []time.Duration{0, -time.Second, time.Second, time.Hour, 40 * 24 * time.Hour}
	fuzzUnits    = []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour}
)

func (run *fuzzRun) dest(sel byte, r *fuzzReader) protocol.Address {
	switch sel % 5 {
	case 0:
		return run.fx.b.Address()
	case 1:
		return run.fx.c.Address()
	case 2:
		return run.fx.a.Address()
	case 3:
		return protocol.Address{}
	}
	var a protocol.Address
	copy(a[:], r.bytes(16))
	return a
}

// poolFrame picks a frame from the pool and maybe mutates a copy of it.
func (run *fuzzRun) poolFrame(r *fuzzReader) []byte {
	f := slices.Clone(run.pool[r.u16()%len(run.pool)])
	mut, pos, val := r.byte(), r.u16(), r.byte()
	if len(f) == 0 {
		return f
	}
	switch mut % 5 {
	case 1:
		f[pos%len(f)] = val
	case 2:
		f = f[:pos%len(f)]
	case 3:
		f[pos%len(f)] ^= 1 << (val % 8)
	case 4:
		f = append(f, val)
	}
	return f
}

func (run *fuzzRun) step(in routing.Input) {
	_ = run.a.Step(run.now, in)
}

func (run *fuzzRun) op(r *fuzzReader) {
	switch int(r.byte()) % numOps {
	case opLinkUp:
		id, kind, flags := routing.LinkID(r.byte()%8), routing.LinkKind(r.byte()%5), r.byte()
		info := routing.LinkInfo{
			ID: id, Kind: kind, Shared: flags&1 != 0, HopAcks: flags&2 != 0, Window: int(flags>>2) & 3,
			MTU:        fuzzMTUs[int(r.byte())%len(fuzzMTUs)],
			Bitrate:    fuzzBitrates[int(r.byte())%len(fuzzBitrates)],
			QueueBytes: fuzzQueues[int(r.byte())%len(fuzzQueues)],
			Cost:       uint16(r.byte()) << 4,
		}
		switch {
		case flags&16 != 0:
			info.Peer = run.fx.b.Address()
		case flags&32 != 0:
			info.Peer = run.fx.c.Address()
		case flags&64 != 0:
			info.Peer = run.fx.a.Address()
		}
		if run.a.Step(run.now, routing.LinkUp{Link: info}) == nil {
			run.links[id] = info
		}
	case opLinkDown:
		id := routing.LinkID(r.byte() % 8)
		run.step(routing.LinkDown{Link: id})
		delete(run.links, id)
	case opFrame:
		id := routing.LinkID(r.byte() % 8)
		frame := r.bytes(r.u16() % 4096)
		snr := r.byte()
		run.step(routing.FrameReceived{Link: id, Frame: frame, SNR: float64(int8(snr)), HasSNR: snr&1 != 0})
	case opTxDone:
		run.step(routing.TxDone{Link: routing.LinkID(r.byte() % 8), Frames: int(int8(r.byte()))})
	case opSend:
		dest := run.dest(r.byte(), r)
		n := r.u16()
		if n > 60000 {
			n = protocol.MaxPayloadSize + n - 60000
		}
		ttl, flags, typ := fuzzTTLs[int(r.byte())%len(fuzzTTLs)], r.byte(), protocol.Type(r.byte()%8)
		run.step(routing.SendRequest{Ref: uint64(n), Dest: dest, Body: make([]byte, n), TTL: ttl, SealedSender: flags&1 != 0, Type: typ})
	case opBroadcast:
		key := run.fx.key
		if r.byte()&1 != 0 {
			key = run.fx.key2
		}
		hop, signed, n := r.byte(), r.byte()&1 != 0, int(r.byte())*8
		run.step(routing.Broadcast{Ref: 9, Channel: key, HopLimit: hop, Signed: signed, Body: make([]byte, n)})
	case opTick:
		d := time.Duration(r.u16()) * fuzzUnits[int(r.byte())%len(fuzzUnits)]
		run.now = run.now.Add(d)
		run.a.Tick(run.now)
		run.b.Tick(run.now)
		run.drainB()
	case opPoolFrame:
		frame := run.poolFrame(r)
		run.step(routing.FrameReceived{Link: routing.LinkID(r.byte() % 8), Frame: frame})
	case opPeerSend:
		_ = run.b.Step(run.now, routing.SendRequest{Ref: 1, Dest: run.fx.a.Address(), Body: make([]byte, r.u16()%3000)})
		run.drainB()
	case opJoin:
		key, b := run.fx.key, r.byte()
		if b&1 != 0 {
			key = run.fx.key2
		}
		if b&2 != 0 {
			// Scope (or, bit 2 clear, unscope) the channel instead.
			run.step(routing.ScopeChannel{Channel: key.ID(), Scoped: b&4 != 0})
			break
		}
		run.step(routing.JoinChannel{Key: key})
	case opLeave:
		run.step(routing.LeaveChannel{Channel: run.fx.key.ID()})
	case opResolved:
		dest := run.dest(r.byte(), r)
		id := routing.LinkID(r.byte() % 8)
		var pub *protocol.PublicIdentity
		switch r.byte() % 4 {
		case 1:
			pub = run.fx.b.Public()
		case 2:
			pub = run.fx.c.Public()
		case 3:
			pub = run.fx.a.Public()
		}
		run.step(routing.Resolved{Dest: dest, Link: id, Identity: pub, TTL: fuzzTTLs[int(r.byte())%len(fuzzTTLs)]})
	case opGossip:
		run.step(routing.GossipReceived{Frame: run.poolFrame(r)})
	case opRestart:
		run.restart()
	case opStale:
		// Inputs may arrive with a time before the latest one.
		_ = run.a.Step(run.now.Add(-time.Hour), routing.SendRequest{Ref: 7, Dest: run.dest(r.byte(), r), Body: []byte("late")})
	}
}

// restart replaces A by a new engine restored from what A persisted.
func (run *fuzzRun) restart() {
	keys := make([]string, 0, len(run.store))
	for k := range run.store {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var recs []routing.Record
	for _, k := range keys {
		recs = append(recs, routing.Record{Key: k, Value: run.store[k]})
	}
	a, err := routing.New(run.cfgA, run.now, recs)
	if a == nil {
		run.t.Fatalf("restart: no engine: %v", err)
	}
	if err != nil {
		// Everything A persisted must restore.
		run.t.Fatalf("restart from A's own records: %v", err)
	}
	run.a = a
	run.links = map[routing.LinkID]routing.LinkInfo{}
	run.last = routing.Counters{}
}

// drainB carries out B's Ready: its frames go to the pool.
func (run *fuzzRun) drainB() {
	for i := 0; i < 100 && run.b.HasReady(); i++ {
		rd := run.b.Ready()
		for _, tx := range rd.Transmits {
			run.pool = append(run.pool, tx.Frame)
			if tx.Link == pairLoRa {
				_ = run.b.Step(run.now, routing.TxDone{Link: pairLoRa, Frames: 1})
			}
		}
		run.b.Advance()
	}
	if len(run.pool) > 512 {
		run.pool = slices.Delete(run.pool, len(run.fx.frames), len(run.pool)-256)
	}
}

func effectiveMTU(info routing.LinkInfo) int {
	switch {
	case info.MTU != 0:
		return info.MTU
	case info.Kind == routing.LinkLoRa:
		return 255
	}
	return 64 * 1024
}

// check drains A's Ready and checks the invariants.
func (run *fuzzRun) check() {
	t := run.t
	rd := run.a.Ready()
	for _, r := range rd.Persist {
		run.store[r.Key] = slices.Clone(r.Value)
	}
	for _, k := range rd.Deletes {
		delete(run.store, k)
	}
	for _, d := range rd.Deliveries {
		if d.Broadcast {
			continue
		}
		if run.delivered[d.ID] {
			t.Fatalf("message %x delivered twice", d.ID)
		}
		run.delivered[d.ID] = true
	}
	for _, ev := range rd.Events {
		if ev.Kind == routing.EventDelivered {
			if run.confirmed[ev.ID] {
				t.Fatalf("message %x reported delivered twice", ev.ID)
			}
			run.confirmed[ev.ID] = true
		}
	}
	for _, tx := range rd.Transmits {
		info, ok := run.links[tx.Link]
		if !ok {
			t.Fatalf("transmit on link %d, which is not up", tx.Link)
		}
		if len(tx.Frame) > effectiveMTU(info) {
			t.Fatalf("transmit of %d bytes on link %d with MTU %d", len(tx.Frame), tx.Link, effectiveMTU(info))
		}
		// B hears what A says on the links they share.
		if tx.Link == pairIP || tx.Link == pairLoRa {
			_ = run.b.Step(run.now, routing.FrameReceived{Link: tx.Link, Frame: slices.Clone(tx.Frame)})
		}
	}
	run.a.Advance()
	run.drainB()
	c := run.a.Counters()
	cur, last := reflect.ValueOf(&c).Elem(), reflect.ValueOf(&run.last).Elem()
	for i := range run.gauge {
		if cur.Field(i).Uint() < last.Field(i).Uint() {
			t.Fatalf("counter %s went down from %d to %d", cur.Type().Field(i).Name, last.Field(i).Uint(), cur.Field(i).Uint())
		}
	}
	run.last = c
	if routes := run.a.Routes(); c.Routes != uint64(len(routes)) {
		t.Fatalf("Routes gauge %d, table has %d routes", c.Routes, len(routes))
	}
	for _, r := range run.a.Routes() {
		if _, ok := run.links[r.Link]; !ok || r.Dest == run.fx.a.Address() || r.Metric == routing.MetricInfinite {
			t.Fatalf("route to %v over link %d (up: %v), metric %d", r.Dest, r.Link, ok, r.Metric)
		}
	}
	if w := run.a.NextWake(); w.Before(run.now) {
		t.Fatalf("NextWake %v is before now %v", w, run.now)
	}
}

// runDry ticks A at its NextWake until nothing is left to do soon. Work
// that one Tick schedules for the same instant (a hop ack that failed
// sends its record back to custody, due now) is fine, but a few Ticks at
// one instant must clear it: NextWake stuck at now would spin the daemon.
func (run *fuzzRun) runDry() {
	end := run.now.Add(time.Hour)
	same := 0
	for range 64 {
		w := run.a.NextWake()
		if w.After(end) {
			return
		}
		if w.Equal(run.now) {
			if same++; same > 3 {
				run.t.Fatalf("busy loop: NextWake stays at %v", w.Sub(epoch))
			}
		} else {
			same = 0
		}
		run.now = w
		run.a.Tick(w)
		run.check()
		// A transport that reports TxDone keeps windows open.
		ids := slices.Sorted(maps.Keys(run.links))
		for _, id := range ids {
			if info := run.links[id]; info.Window > 0 {
				_ = run.a.Step(run.now, routing.TxDone{Link: id, Frames: info.Window})
				run.check()
			}
		}
	}
}
