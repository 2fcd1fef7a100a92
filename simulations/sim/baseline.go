package sim

import (
	"encoding/binary"
	"time"

	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/simulations/radio"
)

// Baseline flooding strategies: the same radio, geometry and workload as
// meshd's engine, but the broadcasts (and, with unicast.strategy, the
// unicast messages) are flooded by a model of another protocol instead of
// being handed to the engine (docs/simulations.md, "Baselines"):
//
//   - naive: every node rebroadcasts every new packet once, as soon as the
//     radio lets it (the scenario's carrier sense and duty cycle), while its
//     hop limit lasts; nothing cancels, nobody retries.
//   - meshtastic: Meshtastic's managed flooding as in its firmware 2.8
//     (src/mesh/RadioInterface.cpp, FloodingRouter.cpp, ReliableRouter.cpp,
//     NextHopRouter.cpp): a node waits an SNR-weighted contention window
//     before it rebroadcasts (getTxDelayMsecWeighted: the lower the SNR,
//     the shorter the wait, so the farthest node goes first), cancels its
//     rebroadcast when it hears one duplicate (perhapsCancelDupe), rebroadcasts
//     again when the originator repeats (hop_start == hop_limit) and it has
//     nothing queued, and the originator of a want_ack packet retransmits
//     after getRetransmissionMsec until it hears an (implicit) ACK, at most
//     NUM_RELIABLE_RETX = 3 transmissions in all. A direct message is
//     flooded the same way; its destination answers with a flooded ACK, and
//     relays that hear the ACK cancel their rebroadcast of the message.
//
// The engines keep running (announces, adverts) in every strategy, so the
// background load on the air is the same.

// Strategy names.
const (
	StrategyMeshd      = "meshd"
	StrategyNaive      = "naive"
	StrategyMeshtastic = "meshtastic"
)

// Meshtastic firmware constants (RadioInterface.h, MeshTypes.h).
const (
	mtCWMin          = 3    // RadioInterface::CWmin
	mtCWMax          = 8    // RadioInterface::CWmax
	mtSNRMin         = -20  // RadioInterface::getCWsize SNR_MIN
	mtSNRMax         = 10   // RadioInterface::getCWsize SNR_MAX
	mtProcessingMsec = 4500 // RadioInterface::PROCESSING_TIME_MSEC
	mtNumSymCAD      = 2    // RadioInterface::NUM_SYM_CAD (SX126x)
	mtReliableRetx   = 3    // NextHopRouter::NUM_RELIABLE_RETX: transmissions in all
	mtHopReliable    = 3    // HOP_RELIABLE: the default hop limit
	mtHopMax         = 7    // HOP_MAX
	mtHeaderLen      = 16   // sizeof(PacketHeader): to, from, id, flags, channel, next_hop, relay_node
)

// BroadcastStrategy configures how broadcasts are flooded.
type BroadcastStrategy struct {
	// Strategy is meshd (the engine: default), naive or meshtastic.
	Strategy Strategy `toml:"strategy"`
	// HopLimit is the baselines' hop limit (1..7, default 3 as
	// Meshtastic's HOP_RELIABLE); meshd's engine has its own.
	HopLimit *int `toml:"hop_limit"`
	// Meshtastic is the meshtastic strategy's profile: "firmware" (the
	// default: firmware 2.8's constants) or "meshtasticator" (the constants
	// of Meshtasticator's model of firmware 2.1, to reproduce its results).
	Meshtastic string `toml:"meshtastic"`
}

// UnicastStrategy configures how unicast messages travel: meshd (the
// engine's routes: default), or flooded as naive or meshtastic direct
// messages (hop limit from broadcast.hop_limit).
type UnicastStrategy struct {
	Strategy Strategy `toml:"strategy"`
}

// Strategy is a strategy name: meshd, naive or meshtastic.
type Strategy string

func (s Strategy) valid() bool {
	return s == StrategyMeshd || s == StrategyNaive || s == StrategyMeshtastic
}

// arduinoMap is Arduino's map(): integer (long) arithmetic, truncating
// towards zero, no clamping; the firmware passes the float SNR, which C
// truncates to long.
func arduinoMap(x, inMin, inMax, outMin, outMax int64) int64 {
	return (x-inMin)*(outMax-outMin)/(inMax-inMin) + outMin
}

// mtProfile is a version of Meshtastic's contention windows: the
// firmware's (default) or the one Meshtasticator models (firmware 2.1, as
// its lib/mac.py and lib/phy.py have it), for reproducing its results.
type mtProfile struct {
	cwMin, cwMax     int
	snrMin, snrMax   float64
	cadSymbols       float64 // the slot's CAD part, in symbols
	routerOffset     bool    // a client first waits 2 x CWmax slots (firmware 2.3 on)
	floatMap         bool    // Python's float arithmetic (Meshtasticator), not Arduino's long map()
	reliableRetx     int     // transmissions in all for want_ack
	retxCWmaxPenalty bool    // getRetransmissionMsec adds 2 x CWmax slots
}

// Meshtastic profiles: the firmware 2.8 (RadioInterface.cpp/.h) and
// Meshtasticator's model (lib/mac.py: CWmin 2, SNR clamped to -20..15,
// random(0, 2^CWsize) slots; lib/phy.py: slot = 8.5 symbols of CAD + 7.6
// ms; lib/config.py: maxRetransmission 3).
var (
	mtFirmware = mtProfile{cwMin: mtCWMin, cwMax: mtCWMax, snrMin: mtSNRMin, snrMax: mtSNRMax,
		cadSymbols: max(2.25, mtNumSymCAD+0.5), routerOffset: true, reliableRetx: mtReliableRetx, retxCWmaxPenalty: true}
	mtMeshtasticator = mtProfile{cwMin: 2, cwMax: 8, snrMin: -20, snrMax: 15, cadSymbols: 8.5, floatMap: true, reliableRetx: 4}
)

// cwSize is the profile's getCWsize for an SNR already clamped to its
// range (the firmware's own profile: see mtCWSize).
func (m mtProfile) cwSize(snr float64) int {
	if m.floatMap {
		return int((snr-m.snrMin)*float64(m.cwMax-m.cwMin)/(m.snrMax-m.snrMin) + float64(m.cwMin))
	}
	return int(uint8(arduinoMap(int64(snr), int64(m.snrMin), int64(m.snrMax), int64(m.cwMin), int64(m.cwMax))))
}

// slot is the profile's slot time.
func (m mtProfile) slot(p radio.Params) time.Duration {
	symMs := float64(p.SymbolTime()) / float64(time.Millisecond)
	ms := m.cadSymbols*symMs + 0.2 + 0.4 + 7
	if m.floatMap {
		return time.Duration(ms * float64(time.Millisecond))
	}
	return time.Duration(uint32(ms)) * time.Millisecond
}

// delay is the rebroadcast delay of a client for a frame received at snr
// dB. The simulated SNR has no ceiling (a neighbour 20 m away is at +40
// dB), a LoRa modem's estimate saturates; as Meshtasticator does, it is
// clamped to getCWsize's range, so that a strong link gets the longest
// window the firmware means it to, not 2^13 slots.
func (m mtProfile) delay(snr float64, slot time.Duration, r func(n int64) int64) time.Duration {
	snr = min(max(snr, m.snrMin), m.snrMax)
	d := time.Duration(r(int64(1)<<m.cwSize(snr))) * slot
	if m.routerOffset {
		d += time.Duration(2*m.cwMax) * slot
	}
	return d
}

// retransmission is getRetransmissionMsec at 0 % channel utilisation.
func (m mtProfile) retransmission(air, slot time.Duration) time.Duration {
	slots := int64(1)<<m.cwMin + int64(1)<<((m.cwMax+m.cwMin)/2)
	if m.retxCWmaxPenalty {
		slots += int64(2 * m.cwMax)
	}
	return 2*air.Truncate(time.Millisecond) + time.Duration(slots)*slot + mtProcessingMsec*time.Millisecond
}

// mtCWSize is RadioInterface::getCWsize: the contention window exponent
// for a frame received at snr dB (not clamped, as in the firmware: above
// 16 dB it exceeds CWmax).
func mtCWSize(snr float64) int { return mtFirmware.cwSize(snr) }

// mtSlotTime is RadioInterface::computeSlotTimeMsec for a sub-GHz radio:
// the CAD time, max(2.25, NUM_SYM_CAD + 0.5) symbols, plus 0.2 ms
// propagation, 0.4 ms Rx/Tx turnaround and 7 ms MAC processing, truncated
// to whole milliseconds (slotTimeMsec is a uint32_t).
func mtSlotTime(p radio.Params) time.Duration { return mtFirmware.slot(p) }

// mtTxDelayWeighted is RadioInterface::getTxDelayMsecWeighted for a client
// (not a router): 2 x CWmax slots, plus a random number of slots in
// [0, 2^CWsize). r draws the random number (Arduino's random(0, n)).
func mtTxDelayWeighted(snr float64, slot time.Duration, r func(n int64) int64) time.Duration {
	cw := mtCWSize(snr)
	return 2*mtCWMax*slot + time.Duration(r(int64(1)<<cw))*slot
}

// profile is the run's Meshtastic profile.
func (s *Sim) profile() mtProfile {
	if s.sc.Broadcast.Meshtastic == "meshtasticator" {
		return mtMeshtasticator
	}
	return mtFirmware
}

// mtRetransmission is RadioInterface::getRetransmissionMsec with the
// channel utilisation taken as 0 (CWsize = CWmin): twice the packet's
// airtime plus (2^CWmin + 2 CWmax + 2^((CWmax+CWmin)/2)) slots plus the
// processing time.
func mtRetransmission(air, slot time.Duration) time.Duration {
	return mtFirmware.retransmission(air, slot)
}

// baselineLink is the engine link ID that marks a baseline frame in a
// node's radio queue (the engine never sees it, nor its TxDone).
const baselineLink routing.LinkID = 0

// Baseline packet kinds (the first payload byte, where Meshtastic keeps the
// port number).
const (
	blData byte = 1 // a broadcast or a direct message
	blAck  byte = 2 // a direct message's ACK
)

// blPacket is a baseline packet: Meshtastic's 16-byte header (to, from,
// id, flags with hop limit, want_ack and hop start; channel, next hop and
// relay bytes unused) and a payload: the kind, then the broadcast's number
// or the message's ref (data) or the ACKed packet's id (ack).
type blPacket struct {
	to, from uint32 // node indices; to = blBroadcast for a broadcast
	id       uint32
	hopLimit uint8
	hopStart uint8
	wantAck  bool
	kind     byte
	num      uint64 // data: broadcast number or message ref; ack: ACKed id
	size     int    // payload bytes
}

const blBroadcast = 0xFFFFFFFF

func (p *blPacket) key() uint64 { return uint64(p.from)<<32 | uint64(p.id) }

// encode writes the packet as the frame that goes on the air.
func (p *blPacket) encode() []byte {
	b := make([]byte, mtHeaderLen+max(p.size, 9))
	binary.LittleEndian.PutUint32(b[0:], p.to)
	binary.LittleEndian.PutUint32(b[4:], p.from)
	binary.LittleEndian.PutUint32(b[8:], p.id)
	f := p.hopLimit&7 | p.hopStart&7<<5
	if p.wantAck {
		f |= 1 << 3
	}
	b[12] = f
	b[mtHeaderLen] = p.kind
	binary.BigEndian.PutUint64(b[mtHeaderLen+1:], p.num)
	return b
}

// decodeBaseline parses a baseline frame.
func decodeBaseline(b []byte) (blPacket, bool) {
	if len(b) < mtHeaderLen+9 {
		return blPacket{}, false
	}
	f := b[12]
	return blPacket{
		to: binary.LittleEndian.Uint32(b[0:]), from: binary.LittleEndian.Uint32(b[4:]),
		id: binary.LittleEndian.Uint32(b[8:]), hopLimit: f & 7, hopStart: f >> 5 & 7, wantAck: f&(1<<3) != 0,
		kind: b[mtHeaderLen], num: binary.BigEndian.Uint64(b[mtHeaderLen+1:]), size: len(b) - mtHeaderLen,
	}, true
}

// blNode is a node's baseline state: the packets it has seen, its pending
// rebroadcasts and its pending retransmissions as an originator.
type blNode struct {
	seen    map[uint64]struct{}
	pending map[uint64]*blPending
	retx    map[uint64]*blPending
	nextID  uint32
}

// blPending is a frame waiting for its delay (or retransmission timer) or
// in the radio queue.
type blPending struct {
	key       uint64
	frame     []byte
	left      int  // retransmissions left (originator)
	cancelled bool // the timer does nothing
	retx      bool // an originator's retransmission timer
}

func (s *Sim) blState(n *node) *blNode {
	if n.bl == nil {
		n.bl = &blNode{seen: map[uint64]struct{}{}, pending: map[uint64]*blPending{}, retx: map[uint64]*blPending{}}
	}
	return n.bl
}

// blStrategy is the strategy for a packet to (broadcast or not).
func (s *Sim) blStrategy(broadcast bool) Strategy {
	if broadcast {
		return s.sc.Broadcast.Strategy
	}
	return s.sc.Unicast.Strategy
}

// blOriginate floods a new packet from n: a broadcast (to = nil, num its
// number) or a direct message to dst (num its ref).
func (s *Sim) blOriginate(n, dst *node, num uint64) {
	st := s.blState(n)
	st.nextID++
	hl := uint8(*s.sc.Broadcast.HopLimit)
	p := blPacket{to: blBroadcast, from: uint32(n.idx), id: st.nextID, hopLimit: hl, hopStart: hl, kind: blData, num: num,
		size: 1 + s.sc.Traffic.Size}
	if dst != nil {
		p.to = uint32(dst.idx)
		p.size = 1 + s.sc.Traffic.Size
	}
	strat := s.blStrategy(dst == nil)
	p.wantAck = strat == StrategyMeshtastic
	st.seen[p.key()] = struct{}{}
	frame := p.encode()
	s.blQueue(n, frame)
	if p.wantAck {
		air, _ := s.params.TimeOnAir(len(frame))
		pr := s.profile()
		r := &blPending{key: p.key(), frame: frame, left: pr.reliableRetx - 1, retx: true}
		st.retx[p.key()] = r
		s.push(event{at: s.now.Add(pr.retransmission(air, pr.slot(s.params))), kind: evBaseline, node: n, gen: n.gen, bl: r})
	}
}

// blQueue hands a baseline frame to n's radio (radioSend counts it as
// lora/baseline when it goes on the air: a cancelled one never does).
func (s *Sim) blQueue(n *node, frame []byte) {
	n.held = append(n.held, routing.Transmit{Link: baselineLink, Frame: frame})
	s.radioSend(n)
}

// blTimer is a baseline timer going off: a rebroadcast's delay is over, or
// an originator's retransmission is due.
func (s *Sim) blTimer(n *node, p *blPending, gen uint64) {
	if p.cancelled || gen != n.gen {
		return
	}
	st := s.blState(n)
	if p.retx {
		if st.retx[p.key] != p {
			return
		}
		if p.left <= 0 {
			delete(st.retx, p.key)
			return
		}
		p.left--
		s.blQueue(n, p.frame)
		air, _ := s.params.TimeOnAir(len(p.frame))
		pr := s.profile()
		s.push(event{at: s.now.Add(pr.retransmission(air, pr.slot(s.params))), kind: evBaseline, node: n, gen: n.gen, bl: p})
		return
	}
	if st.pending[p.key] == p {
		delete(st.pending, p.key)
	}
	s.blQueue(n, p.frame)
}

// blCancel removes a queued rebroadcast of key from n's radio queue and
// its timer (not a frame already on the air); it reports whether it
// cancelled something.
func (s *Sim) blCancel(n *node, key uint64) bool {
	st := s.blState(n)
	if p := st.pending[key]; p != nil {
		p.cancelled = true
		delete(st.pending, key)
		return true
	}
	first := 0
	if n.busy {
		first = 1
	}
	for i := first; i < len(n.held); i++ {
		if n.held[i].Link != baselineLink {
			continue
		}
		if q, ok := decodeBaseline(n.held[i].Frame); ok && q.key() == key {
			n.held = append(n.held[:i], n.held[i+1:]...)
			return true
		}
	}
	return false
}

// blReceive is a baseline frame received by n at snr dB.
func (s *Sim) blReceive(n *node, frame []byte, snr float64) {
	p, ok := decodeBaseline(frame)
	if !ok {
		s.errs++
		return
	}
	st := s.blState(n)
	strat := s.blStrategy(p.to == blBroadcast)
	key := p.key()
	if r := st.retx[key]; r != nil {
		// Implicit ACK: someone rebroadcast what n originated.
		r.cancelled = true
		delete(st.retx, key)
		s.blCancel(n, key)
	}
	if _, seen := st.seen[key]; seen {
		s.blDuplicate(n, &p, strat, snr)
		return
	}
	st.seen[key] = struct{}{}
	s.blDeliver(n, &p, strat)
	if p.to == uint32(n.idx) || p.hopLimit == 0 {
		return
	}
	s.blRebroadcast(n, p, strat, snr)
}

// blDuplicate handles a packet n has seen: Meshtastic cancels its own
// rebroadcast, or relays again a repeat of the originator if it has none
// queued.
func (s *Sim) blDuplicate(n *node, p *blPacket, strat Strategy, snr float64) {
	if strat != StrategyMeshtastic {
		return
	}
	if p.hopStart > 0 && p.hopStart == p.hopLimit && p.from != uint32(n.idx) {
		if !s.blQueued(n, p.key()) && p.to != uint32(n.idx) {
			s.blRebroadcast(n, *p, strat, snr)
		}
		return
	}
	s.blCancel(n, p.key())
}

// blQueued reports whether n has a rebroadcast of key waiting or queued.
func (s *Sim) blQueued(n *node, key uint64) bool {
	if s.blState(n).pending[key] != nil {
		return true
	}
	for _, h := range n.held {
		if h.Link == baselineLink {
			if q, ok := decodeBaseline(h.Frame); ok && q.key() == key {
				return true
			}
		}
	}
	return false
}

// blRebroadcast schedules n's rebroadcast of p with one hop less: at once
// (naive) or after the SNR-weighted delay (meshtastic).
func (s *Sim) blRebroadcast(n *node, p blPacket, strat Strategy, snr float64) {
	p.hopLimit--
	frame := p.encode()
	if strat == StrategyNaive {
		s.blQueue(n, frame)
		return
	}
	pd := &blPending{key: p.key(), frame: frame}
	s.blState(n).pending[pd.key] = pd
	pr := s.profile()
	d := pr.delay(snr, pr.slot(s.params), n.mac.Int64N)
	s.push(event{at: s.now.Add(d), kind: evBaseline, node: n, gen: n.gen, bl: pd})
}

// blDeliver hands a new packet to n's application: a broadcast's
// delivery, a direct message to its destination (which ACKs it under
// meshtastic), or an ACK to the originator (which stops retrying); relays
// that hear an ACK cancel their rebroadcast of the message.
func (s *Sim) blDeliver(n *node, p *blPacket, strat Strategy) {
	switch {
	case p.kind == blData && p.to == blBroadcast:
		s.bcastRx++
		if p.num >= 1 && p.num <= uint64(len(s.bcastAt)) && n.member {
			s.broadcastDelivered(n, p.num)
		}
	case p.kind == blData && p.to == uint32(n.idx):
		if p.num >= 1 && p.num <= uint64(len(s.msgs)) {
			m := s.msgs[p.num-1]
			if m.dst == n && !m.delivered {
				m.delivered, m.at, m.hops = true, s.now, p.hopStart-p.hopLimit+1
				n.stats.Delivered++
			}
		}
		if p.wantAck {
			s.blAck(n, p)
		}
	case p.kind == blAck && p.to == uint32(n.idx):
		key := uint64(n.idx)<<32 | p.num
		if r := s.blState(n).retx[key]; r != nil {
			r.cancelled = true
			delete(s.blState(n).retx, key)
			s.blCancel(n, key)
		}
	case p.kind == blAck:
		s.blCancel(n, uint64(p.to)<<32|p.num)
	}
}

// blAck floods the ACK of direct message p from its destination n.
func (s *Sim) blAck(n *node, p *blPacket) {
	st := s.blState(n)
	st.nextID++
	hl := uint8(*s.sc.Broadcast.HopLimit)
	a := blPacket{to: p.from, from: uint32(n.idx), id: st.nextID, hopLimit: hl, hopStart: hl, kind: blAck, num: uint64(p.id), size: 1 + 8}
	st.seen[a.key()] = struct{}{}
	s.blQueue(n, a.encode())
}

// applyBaselineDefaults sets the strategies to meshd and the hop limit to
// Meshtastic's default.
func (sc *Scenario) applyBaselineDefaults() {
	if sc.Broadcast.Strategy == "" {
		sc.Broadcast.Strategy = StrategyMeshd
	}
	if sc.Unicast.Strategy == "" {
		sc.Unicast.Strategy = StrategyMeshd
	}
	if sc.Broadcast.Meshtastic == "" {
		sc.Broadcast.Meshtastic = "firmware"
	}
	if sc.Broadcast.HopLimit == nil {
		h := mtHopReliable
		sc.Broadcast.HopLimit = &h
	}
}

// validateBaseline checks the baseline keys; the error gives the line and
// column of the key in doc.
func (sc *Scenario) validateBaseline(doc []byte, sets []string) error {
	for _, k := range []struct {
		key string
		v   Strategy
	}{{"broadcast.strategy", sc.Broadcast.Strategy}, {"unicast.strategy", sc.Unicast.Strategy}} {
		if !k.v.valid() {
			return badAt(doc, sets, k.key, "%q is not meshd, naive or meshtastic", k.v)
		}
	}
	if m := sc.Broadcast.Meshtastic; m != "firmware" && m != "meshtasticator" {
		return badAt(doc, sets, "broadcast.meshtastic", "%q is not firmware or meshtasticator", m)
	}
	if h := *sc.Broadcast.HopLimit; h < 1 || h > mtHopMax {
		return badAt(doc, sets, "broadcast.hop_limit", "%d not in 1..%d (Meshtastic's HOP_MAX)", h, mtHopMax)
	}
	return nil
}

// countAirtime adds a frame going on the air to the airtime per kind: the
// engine's by priority (as frames counts them when handed over), a
// baseline's as lora/baseline (broadcasts) or lora/baseline-unicast
// (direct messages and their ACKs), which frames counts here, on the air
// (a cancelled rebroadcast never is).
func (s *Sim) countAirtime(tx routing.Transmit, air time.Duration) {
	if tx.Link != baselineLink {
		// meshd's own frames, by priority: an array, folded into
		// airtimeBy under loraKind's names when the summary is made.
		p := min(int(tx.Priority), len(s.airtimeLoRa)-1)
		s.airtimeLoRa[p] += air
		s.airtimeLoRaSeen[p] = true
		return
	}
	kind := "lora/baseline"
	if p, ok := decodeBaseline(tx.Frame); ok && p.to != blBroadcast {
		kind = "lora/baseline-unicast"
	}
	s.count(kind, len(tx.Frame))
	if s.airtimeBy == nil {
		s.airtimeBy = map[string]time.Duration{}
	}
	s.airtimeBy[kind] += air
}

// foldAirtime adds the airtime of meshd's frames by priority to
// airtimeBy.
func (s *Sim) foldAirtime() {
	for p, seen := range s.airtimeLoRaSeen {
		if !seen {
			continue
		}
		if s.airtimeBy == nil {
			s.airtimeBy = map[string]time.Duration{}
		}
		s.airtimeBy[loraKinds[p]] += s.airtimeLoRa[p]
		s.airtimeLoRa[p], s.airtimeLoRaSeen[p] = 0, false
	}
}

// broadcastKinds are the frame kinds that carry broadcasts: meshd's
// channel frames (bulk) and the baselines' broadcasts.
var broadcastKinds = []string{"lora/bulk", "lora/baseline"}

// broadcastSummary fills in the strategy-neutral broadcast figures: the
// mean reach, the radio transmissions per broadcast and their airtime.
func (s *Sim) broadcastSummary(sum *Summary) {
	sum.BroadcastStrategy = string(s.sc.Broadcast.Strategy)
	sum.BroadcastReach = sum.ChannelDeliveryRatio
	s.foldAirtime()
	sum.AirtimeByKind = map[string]float64{}
	for k, v := range s.airtimeBy {
		sum.AirtimeByKind[k] = round(v.Seconds(), 3)
	}
	var frames uint64
	var air time.Duration
	for _, k := range broadcastKinds {
		frames += s.frames[k]
		air += s.airtimeBy[k]
	}
	sum.BroadcastAirtimeS = round(air.Seconds(), 3)
	if s.bcasts > 0 {
		sum.BroadcastTxPer = round(float64(frames)/float64(s.bcasts), 3)
	}
}
