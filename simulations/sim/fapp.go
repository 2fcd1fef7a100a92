package sim

import (
	"crypto/sha256"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// The FAPP workload drives the real fapp package on every node, as the
// daemon does (docs/fapp.md): a therapist's fapp.Publisher releases signed
// announces at epoch boundaries, which go out as unsigned broadcasts on the
// region's public channel (key SHA-256("meshd fapp region v1" || 0 || "10"),
// the daemon's derivation), so gossip carries them on IP and the engines'
// managed flooding on radio; every node that follows the region parses each
// announce (fapp.ParseSlotAnnounce) into its fapp.Index; patients query
// their own index (Index.Query: a followed region is answered locally and
// sends nothing) and reserve what they find with a fapp.PatientBook, the
// request travelling as a sealed-sender unicast envelope of type FAPP
// (custody included) to the therapist's node, whose fapp.Book answers.

const (
	fappRegionKeyLabel = "meshd fapp region v1"
	// Body kinds, as the daemon frames them: a region channel message
	// starting with 0x01 is a bare announce (its own version byte); a
	// FAPP unicast starts with 0x01 (to the therapist) or 0x02 (to the
	// patient's node).
	fappKindAnnounce = 0x01
	fappToTherapist  = 0x01
	fappToPatient    = 0x02
	// fappRef is the engine reference of FAPP sends (no workload message
	// has it).
	fappRef = 1 << 61
	// fappMaxSlots keeps an announce with two languages inside one LoRa
	// frame (fapp.AnnounceSize(2, 9) = 227 <= 231).
	fappMaxSlots = 9
)

// regionKey is the public channel key of a PLZ region.
func regionKey(r fapp.Region) protocol.ChannelKey {
	h := sha256.New()
	h.Write([]byte(fappRegionKeyLabel))
	h.Write([]byte{0})
	h.Write([]byte(r.String()))
	return protocol.ChannelKey(h.Sum(nil))
}

type fappRole uint8

const (
	rolePatient fappRole = iota + 1
	roleTherapist
	roleRelay
)

func (r fappRole) String() string {
	return [...]string{"", "patient", "therapist", "relay"}[r]
}

// fappNode is one node's FAPP side.
type fappNode struct {
	role    fappRole
	region  fapp.Region // home region (none for relays)
	follows []fapp.Region
	index   *fapp.Index
	th      *therapist        // roleTherapist
	book    *fapp.PatientBook // rolePatient
	rand    *rand.ChaCha8     // ephemeral identities, sealing
}

// therapist is one therapist, on its own node.
type therapist struct {
	n         *node
	i         int
	region    fapp.Region
	children  bool
	plz       fapp.PLZ
	verfahren fapp.Verfahren
	pub       *fapp.Publisher
	book      *fapp.Book
	rng       *rand.Rand
	places    float64 // new therapy places per week
	nextID    uint16
	gen       uint64 // release events of an older schedule are stale
	due       time.Time
}

// fappAnnounce is one released announce and who got it when.
type fappAnnounce struct {
	from     *node
	region   fapp.Region
	seq      uint32
	sent     time.Time
	size     int
	relayLat []float64 // first deliveries to relays
	follLat  []float64 // first deliveries to the region's followers
	got      []uint64  // bitset by node index
}

type fappAnnKey struct {
	k   fapp.TherapistKey
	seq uint32
}

// fappReservation is one reservation request, from the patient's view.
type fappReservation struct {
	patient *node
	th      *therapist
	sent    time.Time
	done    bool
	state   fapp.ReservationState
	at      time.Time
}

// fappDecision is a request a therapist answers after ConfirmDelay.
type fappDecision struct {
	th      *therapist
	id      fapp.RequestID
	replyTo protocol.Address
}

// fappTraffic counts FAPP's share of the frames: region channel frames on
// radio and IP/TCP links and gossip, and the FAPP unicasts submitted.
type fappTraffic struct {
	loraFrames, loraBytes   uint64
	airtime                 time.Duration
	linkFrames, linkBytes   uint64
	gossipMsgs, gossipBytes uint64
	directMsgs, directBytes uint64
}

type fappState struct {
	cfg        FAPP
	regions    []fapp.Region
	keys       []protocol.ChannelKey
	regionOf   map[protocol.ChannelID]fapp.Region
	nodes      []*fappNode // by node index; nil: not in FAPP
	relays     []*node
	followers  map[fapp.Region]int
	patients   map[fapp.Region][]*node
	therapists []*therapist
	byKey      map[fapp.TherapistKey]*therapist
	// oracle holds every therapist's latest announce: the slots that
	// exist, against which query results are judged.
	oracle   *fapp.Index
	ann      []*fappAnnounce
	annIdx   map[fappAnnKey]int
	verified map[[32]byte]*fapp.SlotAnnounce // nil: every node verifies
	qrng     *rand.Rand

	queries, existing, found, stale int
	res                             []*fappReservation
	resByID                         map[fapp.RequestID]int
	decisions                       []fappDecision
	dropped                         uint64
	refused                         int // requests the book refused: slot not on offer
	traffic                         fappTraffic
}

// buildFAPP assigns the FAPP roles and regions, registers the region
// topics and schedules the workload. It runs before the engines start.
func (s *Sim) buildFAPP() error {
	c := s.sc.FAPP
	if !c.enabled() {
		return nil
	}
	f := &fappState{
		cfg: c, regionOf: map[protocol.ChannelID]fapp.Region{}, nodes: make([]*fappNode, len(s.nodes)),
		followers: map[fapp.Region]int{}, patients: map[fapp.Region][]*node{}, byKey: map[fapp.TherapistKey]*therapist{},
		oracle: fapp.NewIndex(fapp.IndexConfig{MaxAnnounces: 1 << 22, MaxPerRegion: 1 << 22}),
		annIdx: map[fappAnnKey]int{}, resByID: map[fapp.RequestID]int{},
		qrng: rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, -2, seedFAPP))),
	}
	if s.vcache != nil {
		f.verified = map[[32]byte]*fapp.SlotAnnounce{}
	}
	for _, r := range c.Regions {
		reg, _ := fapp.ParseRegion(r) // validated
		f.regions = append(f.regions, reg)
		k := regionKey(reg)
		f.keys = append(f.keys, k)
		f.regionOf[k.ID()] = reg
	}
	s.fapp = f
	rng := rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, -1, seedFAPP)))
	rest, err := s.fappRelays(rng)
	if err != nil {
		return err
	}
	s.fappRelayLinks(rest)
	if err := s.fappPopulate(rng, rest); err != nil {
		return err
	}
	s.fappTopics()
	return nil
}

// fappRelays picks the relays (named ones, then drawn among the taking
// part with an IP link) and returns the other taking part in order.
func (s *Sim) fappRelays(rng *rand.Rand) ([]*node, error) {
	f, c := s.fapp, s.fapp.cfg
	pool := s.nodes
	if len(c.Nodes) > 0 {
		pool = nil
		for _, nm := range c.Nodes {
			pool = append(pool, s.byName[nm])
		}
	}
	relay := map[*node]bool{}
	for _, nm := range c.RelayNodes {
		relay[s.byName[nm]] = true
		f.relays = append(f.relays, s.byName[nm])
	}
	var cand []*node
	for _, n := range pool {
		if !relay[n] && slices.ContainsFunc(n.links, func(l *ipLink) bool { return l.kind() == routing.LinkIP }) {
			cand = append(cand, n)
		}
	}
	if c.Relays > len(cand) {
		return nil, bad("fapp.relays", "%d relays, but only %d of the nodes taking part have an IP link", c.Relays, len(cand))
	}
	rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	for _, n := range cand[:c.Relays] {
		relay[n] = true
		f.relays = append(f.relays, n)
	}
	slices.SortFunc(f.relays, func(a, b *node) int { return a.idx - b.idx })
	for _, n := range f.relays {
		f.nodes[n.idx] = &fappNode{role: roleRelay, follows: slices.Clone(f.regions)}
	}
	var rest []*node
	for _, n := range pool {
		if !relay[n] {
			rest = append(rest, n)
		}
	}
	return rest, nil
}

// fappRelayLinks connects every node of rest that has an IP link to
// RelayLinks relays drawn uniformly (its own stream), skipping relays it
// already has a link to.
func (s *Sim) fappRelayLinks(rest []*node) {
	c := s.fapp.cfg
	if c.RelayLinks == 0 {
		return
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, -4, seedFAPP)))
	for _, n := range rest {
		if !slices.ContainsFunc(n.links, func(l *ipLink) bool { return l.kind() == routing.LinkIP }) {
			continue
		}
		for _, j := range rng.Perm(len(s.fapp.relays))[:c.RelayLinks] {
			r := s.fapp.relays[j]
			if s.ipLinkTo(n, r) == nil {
				s.addLink(r.name, n.name, c.RelayLink)
			}
		}
	}
}

// plzCount is how many postal codes in use start with the region.
func plzCount(r fapp.Region) int {
	k := 0
	for p := fapp.PLZ(r) * 1000; p < fapp.PLZ(r)*1000+1000; p++ {
		if p.Valid() {
			k++
		}
	}
	return k
}

// nationalPLZ is the number of postal codes in use.
func nationalPLZ() int {
	k := 0
	for _, r := range fapp.Regions() {
		k += plzCount(r)
	}
	return k
}

// fappPopulate splits the non-relay nodes among the regions (contiguous
// blocks sized by the regions' shares of postal codes) and makes each
// region's therapists (drawn within its block) and patients.
func (s *Sim) fappPopulate(rng *rand.Rand, rest []*node) error {
	f, c := s.fapp, s.fapp.cfg
	weights := make([]float64, len(f.regions))
	for i, r := range f.regions {
		weights[i] = float64(plzCount(r))
	}
	sizes := apportion(len(rest), weights)
	national := float64(nationalPLZ())
	off := 0
	for i, r := range f.regions {
		block := rest[off : off+sizes[i]]
		off += sizes[i]
		nT := int(math.Round(float64(c.Therapists) * weights[i] / national * c.Scale))
		perm := rng.Perm(len(block))
		if len(c.TherapistNodes) > 0 {
			perm, nT = namedFirst(block, c.TherapistNodes)
		}
		nK := int(math.Round(float64(nT) * float64(c.ChildrenTherapists) / float64(max(c.Therapists, 1))))
		if nT > len(block) {
			return bad("fapp.scale", "region %v gets %d therapists at scale %v but has %d nodes; lower fapp.scale or add nodes", r, nT, c.Scale, len(block))
		}
		for j, p := range perm {
			n := block[p]
			fn := &fappNode{role: rolePatient, region: r, follows: []fapp.Region{r},
				rand: rand.NewChaCha8(seedBytes(s.sc.Seed, n.idx, seedFAPP))}
			f.nodes[n.idx] = fn
			if j >= nT {
				fn.book = fapp.NewPatientBook(fapp.PatientBookConfig{StampBits: uint8(c.StampBits)})
				f.patients[r] = append(f.patients[r], n)
				continue
			}
			fn.role = roleTherapist
			th, err := s.newTherapist(n, fn, r, j < nK)
			if err != nil {
				return err
			}
			fn.th = th
		}
		slices.SortFunc(f.patients[r], func(a, b *node) int { return a.idx - b.idx })
	}
	slices.SortFunc(f.therapists, func(a, b *therapist) int { return a.n.idx - b.n.idx })
	for i, th := range f.therapists {
		th.i = i
		at := Epoch.Add(c.PublishStart.Duration + time.Duration(th.rng.Float64()*float64(c.PublishWindow.Duration)))
		s.push(event{at: at, kind: evFAPPSetup, dyn: i})
	}
	if c.QueryRate > 0 {
		for i := range f.regions {
			at := Epoch.Add(c.QueryStart.Duration).Add(expDur(f.qrng, c.QueryRate/3600))
			s.push(event{at: at, kind: evFAPPQuery, dyn: i})
		}
	}
	return nil
}

// namedFirst orders a block's positions with the named therapists first (in
// the order named) and returns how many of them are in the block.
func namedFirst(block []*node, names []string) ([]int, int) {
	var first, rest []int
	for _, nm := range names {
		for p, n := range block {
			if n.name == nm {
				first = append(first, p)
			}
		}
	}
	for p := range block {
		if !slices.Contains(first, p) {
			rest = append(rest, p)
		}
	}
	return append(first, rest...), len(first)
}

// apportion splits n into len(w) parts proportional to w (largest
// remainder; ties to the earlier part).
func apportion(n int, w []float64) []int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	out := make([]int, len(w))
	rem := make([]float64, len(w))
	left := n
	for i, x := range w {
		q := float64(n) * x / total
		out[i] = int(q)
		rem[i] = q - float64(out[i])
		left -= out[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out
}

// verfahrenWeight is the assumed share of each Verfahren among therapists
// and requests (docs/simulations.md: an assumption, normalised over the
// scenario's list).
var verfahrenWeight = map[fapp.Verfahren]float64{
	fapp.Verhaltenstherapie: 0.50, fapp.TiefenpsychologischFundiert: 0.40, fapp.Analytisch: 0.07, fapp.Systemisch: 0.03,
}

func drawVerfahren(r *rand.Rand, names []string) fapp.Verfahren {
	vs := make([]fapp.Verfahren, len(names))
	total := 0.0
	for i, nm := range names {
		vs[i], _ = fapp.ParseVerfahren(nm) // validated
		total += verfahrenWeight[vs[i]]
	}
	x := r.Float64() * total
	for _, v := range vs {
		if x -= verfahrenWeight[v]; x < 0 {
			return v
		}
	}
	return vs[len(vs)-1]
}

func (s *Sim) newTherapist(n *node, fn *fappNode, r fapp.Region, children bool) (*therapist, error) {
	c := s.fapp.cfg
	rng := rand.New(rand.NewChaCha8(seedBytes(s.sc.Seed, n.idx, seedFAPPTherapist)))
	var plzs []fapp.PLZ
	for p := fapp.PLZ(r) * 1000; p < fapp.PLZ(r)*1000+1000; p++ {
		if p.Valid() {
			plzs = append(plzs, p)
		}
	}
	pub, err := fapp.NewPublisher(fapp.PublisherConfig{Epoch: c.Epoch.Duration})
	if err != nil {
		return nil, bad("fapp.epoch", "%v", err)
	}
	// The book refuses requests for what the publisher does not offer
	// (any more), as fapp/README.md wires them.
	book, err := fapp.NewBook(fapp.BookConfig{Identity: n.id, Offers: pub.Offers,
		Stamps: fapp.NewStampVerifier(fapp.StampConfig{MinBits: uint8(c.StampBits)})})
	if err != nil {
		return nil, err
	}
	th := &therapist{n: n, region: r, children: children, plz: plzs[rng.IntN(len(plzs))],
		verfahren: drawVerfahren(rng, c.TherapistVerfahren), pub: pub, book: book, rng: rng,
		places: c.PlacesPerWeekMin + rng.Float64()*(c.PlacesPerWeekMax-c.PlacesPerWeekMin)}
	s.fapp.therapists = append(s.fapp.therapists, th)
	s.fapp.byKey[fapp.TherapistKeyOf(n.id.Compact())] = th
	return th, nil
}

// fappTopics registers a gossip topic per region with its followers, and
// gives every follower an index.
func (s *Sim) fappTopics() {
	f := s.fapp
	for i, r := range f.regions {
		t := s.addTopic(f.keys[i].ID())
		t.fapp = true
		for _, n := range s.nodes {
			if fn := f.nodes[n.idx]; fn != nil && slices.Contains(fn.follows, r) {
				t.member[n.idx] = true
				f.followers[r]++
			}
		}
	}
	for _, fn := range f.nodes {
		if fn != nil {
			fn.index = fapp.NewIndex(fapp.IndexConfig{})
		}
	}
}

// fappJoin joins a node's engine to the channels of the regions it
// follows (at start and after a restart).
func (s *Sim) fappJoin(n *node) {
	if s.fapp == nil || s.fapp.nodes[n.idx] == nil {
		return
	}
	for _, r := range s.fapp.nodes[n.idx].follows {
		s.step(n, routing.JoinChannel{Key: regionKey(r)})
	}
}

const week = 7 * 24 * time.Hour

// fappSetup is a therapist setting up the offer: the practice's facts,
// the week's Sprechstunde and the therapy places open now.
func (s *Sim) fappSetup(th *therapist) {
	de, _ := fapp.ParseSprache("de")
	en, _ := fapp.ParseSprache("en")
	langs := []fapp.Sprache{de}
	if th.rng.Float64() < 0.3 {
		langs = append(langs, en)
	}
	ag := fapp.Erwachsene
	if th.children {
		ag = fapp.KinderJugendliche
	}
	th.pub.SetProfile(fapp.SlotAnnounce{PLZ: th.plz, Verfahren: fapp.SetOf(th.verfahren),
		Kostentraeger: fapp.SetOf(fapp.GKV, fapp.PKV, fapp.Beihilfe, fapp.Selbstzahler),
		Altersgruppen: fapp.SetOf(ag), Sprachen: langs}, s.now)
	slots := s.sprechstunden(th)
	for k := poisson(th.rng, th.places); k > 0 && len(slots) < fappMaxSlots; k-- {
		slots = append(slots, s.place(th))
	}
	th.pub.SetSlots(slots, s.now)
	s.fappSchedule(th)
	s.push(event{at: s.now.Add(s.nextPlace(th)), kind: evFAPPPlace, dyn: th.i})
}

// poisson draws a Poisson count with mean m (Knuth; m is small).
func poisson(r *rand.Rand, m float64) int {
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (s *Sim) nextPlace(th *therapist) time.Duration {
	if th.places <= 0 {
		return math.MaxInt64 / 2
	}
	return expDur(th.rng, th.places/week.Seconds())
}

// slotTime is a start on one of the next days (from day lo to hi), on a
// weekday, between 08:00 and hour (Berlin), on the half hour.
func slotTime(r *rand.Rand, now time.Time, lo, hi, hour int) time.Time {
	b := fapp.InBerlin(now)
	for {
		d := b.AddDate(0, 0, lo+r.IntN(hi-lo+1))
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		return fapp.BerlinTime(d.Year(), d.Month(), d.Day(), 8+r.IntN(hour-8), 30*r.IntN(2))
	}
}

// sprechstunden are the week's Sprechstunde slots: 25-minute units up to
// 100 minutes, 50-minute ones above.
func (s *Sim) sprechstunden(th *therapist) []fapp.Slot {
	mins := s.fapp.cfg.SprechstundeMinutes
	dauer := 25
	if mins > 100 {
		dauer = 50
	}
	var out []fapp.Slot
	for k := 0; k < (mins+dauer-1)/dauer; k++ {
		th.nextID++
		out = append(out, fapp.Slot{ID: th.nextID, Terminart: fapp.Sprechstunde, Verfahren: th.verfahren,
			Setting: fapp.Einzel, Modalitaet: fapp.Praxis, Voraussetzung: fapp.VoraussetzungKeine,
			Start: slotTime(th.rng, s.now, 1, 7, 18), Dauer: uint8(dauer), Status: fapp.SlotFrei})
	}
	return out
}

// place is a new weekly therapy place (short-term: 12 weekly sessions).
func (s *Sim) place(th *therapist) fapp.Slot {
	th.nextID++
	start := slotTime(th.rng, s.now, 7, 21, 20)
	return fapp.Slot{ID: th.nextID, Terminart: fapp.TherapieplatzKZT, Verfahren: th.verfahren,
		Setting: fapp.Einzel, Modalitaet: fapp.Praxis, Voraussetzung: fapp.VoraussetzungSprechstunde,
		Start: start, Dauer: 50, Woechentlich: true, Bis: start.AddDate(0, 0, 77), Status: fapp.SlotFrei}
}

// fappPlace is a new therapy place: it joins the offer if the announce has
// room (one LoRa frame).
func (s *Sim) fappPlace(th *therapist) {
	if slots := th.pub.Slots(); len(slots) < fappMaxSlots {
		th.pub.SetSlots(append(slots, s.place(th)), s.now)
		s.fappSchedule(th)
	}
	s.push(event{at: s.now.Add(s.nextPlace(th)), kind: evFAPPPlace, dyn: th.i})
}

// fappSchedule schedules the therapist's next release if it is earlier
// than the one scheduled.
func (s *Sim) fappSchedule(th *therapist) {
	at, ok := th.pub.Next()
	if !ok || !th.due.IsZero() && !at.Before(th.due) {
		return
	}
	th.gen++
	th.due = at
	s.push(event{at: maxTime(at, s.now), kind: evFAPPRelease, dyn: th.i, gen: th.gen})
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fappRelease releases the therapist's announce due now and publishes it
// on the region's channel. A therapist whose node is down tries again at
// the next boundary.
func (s *Sim) fappRelease(th *therapist, gen uint64) {
	if gen != th.gen {
		return
	}
	th.due = time.Time{}
	if !th.n.up {
		th.gen++
		th.due = s.now.Add(s.fapp.cfg.Epoch.Duration)
		s.push(event{at: th.due, kind: evFAPPRelease, dyn: th.i, gen: th.gen})
		return
	}
	raw, a, ok, err := th.pub.Release(th.n.id, s.now)
	if err != nil {
		s.errs++
	}
	if ok {
		s.fappPublish(th, raw, a)
	}
	s.fappSchedule(th)
}

func (s *Sim) fappPublish(th *therapist, raw []byte, a *fapp.SlotAnnounce) {
	f := s.fapp
	rec := &fappAnnounce{from: th.n, region: th.region, seq: a.Sequence, sent: s.now, size: len(raw),
		got: make([]uint64, (len(s.nodes)+63)/64)}
	rec.got[th.n.idx/64] |= 1 << (th.n.idx % 64)
	f.annIdx[fappAnnKey{a.Therapist, a.Sequence}] = len(f.ann)
	f.ann = append(f.ann, rec)
	if err := f.oracle.Add(a.Clone(), s.now); err != nil {
		s.errs++
	}
	if fn := f.nodes[th.n.idx]; fn.index != nil {
		_ = fn.index.Add(a.Clone(), s.now) // the own offer, as the daemon indexes it
	}
	s.trace.rec(s.now, "fapp-announce", th.n.idx, 0, th.region.String()+" seq "+strconv.FormatUint(uint64(a.Sequence), 10))
	s.step(th.n, routing.Broadcast{Ref: fappRef, Channel: regionKey(th.region), Body: raw})
}

// fappDeliver handles a delivery that belongs to FAPP (a region channel
// message or a FAPP unicast) and reports whether it did.
func (s *Sim) fappDeliver(n *node, d *routing.Delivery) bool {
	f := s.fapp
	if d.Broadcast {
		r, ok := f.regionOf[d.Channel]
		if !ok {
			return false
		}
		s.fappRegionMessage(n, r, d.Body)
		return true
	}
	if d.Type != protocol.TypeFAPP {
		return false
	}
	fn := f.nodes[n.idx]
	switch {
	case fn == nil || len(d.Body) == 0:
		f.dropped++
	case d.Body[0] == fappToTherapist && fn.th != nil:
		s.fappRequest(fn.th, d.Body[1:], d.From)
	case d.Body[0] == fappToPatient && fn.book != nil:
		s.fappResponse(fn, d.Body[1:])
	default:
		f.dropped++
	}
	return true
}

// fappRegionMessage is an announce reaching a follower of its region: it
// goes into the node's index, and its first arrival is timed.
func (s *Sim) fappRegionMessage(n *node, r fapp.Region, body []byte) {
	f := s.fapp
	fn := f.nodes[n.idx]
	if fn == nil || fn.index == nil || len(body) == 0 || body[0] != fappKindAnnounce {
		f.dropped++
		return
	}
	a, err := f.parse(body, s.now)
	if err != nil || a.Region() != r {
		f.dropped++
		return
	}
	_ = fn.index.Add(a, s.now) // a stale one (a newer arrived first) is refused, and still timed
	i, ok := f.annIdx[fappAnnKey{a.Therapist, a.Sequence}]
	if !ok {
		return
	}
	rec := f.ann[i]
	if rec.got[n.idx/64]&(1<<(n.idx%64)) != 0 {
		return
	}
	rec.got[n.idx/64] |= 1 << (n.idx % 64)
	lat := s.now.Sub(rec.sent).Seconds()
	if fn.role == roleRelay {
		rec.relayLat = append(rec.relayLat, lat)
	}
	rec.follLat = append(rec.follLat, lat)
}

// parse is fapp.ParseSlotAnnounce with a run-wide cache of verified
// encodings (like routing.VerifyCache: a signature's validity is a pure
// function of the bytes, so only the freshness is checked per node).
func (f *fappState) parse(b []byte, now time.Time) (*fapp.SlotAnnounce, error) {
	if f.verified == nil {
		return fapp.ParseSlotAnnounce(b, now, fapp.DefaultClockSkew)
	}
	h := sha256.Sum256(b)
	if a, ok := f.verified[h]; ok {
		if a.Expired(now) || a.Issued.Sub(now) > fapp.DefaultClockSkew {
			return nil, fapp.ErrExpired
		}
		return a.Clone(), nil
	}
	a, err := fapp.ParseSlotAnnounce(b, now, fapp.DefaultClockSkew)
	if err != nil {
		return nil, err
	}
	if len(f.verified) >= maxVerifyCache {
		clear(f.verified)
	}
	f.verified[h] = a.Clone()
	return a, nil
}

// fappQuery is one patient query in region i: the patient asks its own
// index (nothing leaves the node), the result is judged against the
// oracle, and a share of the successful patients reserves the first
// result.
func (s *Sim) fappQuery(i int) {
	f := s.fapp
	r := f.regions[i]
	s.push(event{at: s.now.Add(expDur(f.qrng, f.cfg.QueryRate/3600)), kind: evFAPPQuery, dyn: i})
	var up []*node
	for _, n := range f.patients[r] {
		if n.up {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return
	}
	p := up[f.qrng.IntN(len(up))]
	q := s.drawQuery(r)
	res, err := f.nodes[p.idx].index.Query(q, s.now)
	if err != nil {
		s.errs++
		return
	}
	truth, err := f.oracle.Query(q, s.now)
	if err != nil {
		s.errs++
		return
	}
	first := f.judge(res, truth, s.now)
	s.trace.rec(s.now, "fapp-query", p.idx, 0, strconv.Itoa(len(res))+" of "+strconv.Itoa(len(truth)))
	if first != nil && f.qrng.Float64() < f.cfg.ReserveShare {
		s.fappReserve(p, *first)
	}
}

// judge counts a query against the oracle's answer and returns its first
// result that exists (nil if none).
func (f *fappState) judge(res, truth []fapp.Result, now time.Time) *fapp.Result {
	f.queries++
	if len(truth) > 0 {
		f.existing++
	}
	var first *fapp.Result
	for k := range res {
		switch {
		case !f.exists(res[k], now):
			f.stale++
		case first == nil:
			first = &res[k]
		}
	}
	if first != nil {
		f.found++
	}
	return first
}

// drawQuery draws what a patient asks for: the region, a Verfahren,
// statutory (88 %) or private insurance, the age group (children's share
// of the therapists), a Sprechstunde (70 %) or a therapy place.
func (s *Sim) drawQuery(r fapp.Region) fapp.Query {
	f := s.fapp
	q := fapp.Query{PLZPrefix: r.String(), Verfahren: fapp.SetOf(drawVerfahren(f.qrng, f.cfg.QueryVerfahren))}
	q.Kostentraeger = fapp.SetOf(fapp.GKV)
	if f.qrng.Float64() >= 0.88 {
		q.Kostentraeger = fapp.SetOf(fapp.PKV)
	}
	q.Altersgruppe = fapp.SetOf(fapp.Erwachsene)
	if f.qrng.Float64() < float64(f.cfg.ChildrenTherapists)/float64(max(f.cfg.Therapists, 1)) {
		q.Altersgruppe = fapp.SetOf(fapp.KinderJugendliche)
	}
	q.Terminart = fapp.SetOf(fapp.Sprechstunde)
	if f.qrng.Float64() >= 0.7 {
		q.Terminart = fapp.SetOf(fapp.TherapieplatzKZT, fapp.TherapieplatzLZT)
	}
	return q
}

// exists reports whether a result is a free slot in the therapist's
// latest announce.
func (f *fappState) exists(x fapp.Result, now time.Time) bool {
	a := f.oracle.Get(x.Announce.Therapist)
	if a == nil || a.Withdrawn || a.Expired(now) {
		return false
	}
	for _, sl := range a.Slots {
		if sl.ID == x.Slot.ID {
			return sl.Status == fapp.SlotFrei
		}
	}
	return false
}

// fappReserve sends a reservation request for x from patient p.
func (s *Sim) fappReserve(p *node, x fapp.Result) {
	f := s.fapp
	fn := f.nodes[p.idx]
	th := f.byKey[x.Announce.Therapist]
	if th == nil {
		s.errs++
		return
	}
	// The therapist's identity comes from the profile, which the model
	// takes as cached (profiles are not simulated).
	pr, sealed, err := fn.book.NewRequest(fn.rand, th.n.id.Public(), x.Ref(), x.Start, fapp.RequestOptions{}, s.now)
	if err != nil {
		s.errs++
		return
	}
	f.resByID[pr.Request.ID] = len(f.res)
	f.res = append(f.res, &fappReservation{patient: p, th: th, sent: s.now})
	s.fappSend(p, th.n.addr, append([]byte{fappToTherapist}, sealed...))
}

func (s *Sim) fappSend(n *node, to protocol.Address, body []byte) {
	s.fapp.traffic.directMsgs++
	s.fapp.traffic.directBytes += uint64(len(body))
	s.step(n, routing.SendRequest{Ref: fappRef, Dest: to, Body: body, Type: protocol.TypeFAPP,
		TTL: fapp.DefaultMessageTTL, SealedSender: true})
}

// fappRequest is a request reaching the therapist's node: the book takes
// it, and the therapist answers after ConfirmDelay.
func (s *Sim) fappRequest(th *therapist, sealed []byte, from protocol.Address) {
	f := s.fapp
	r, err := th.book.Open(sealed, s.now)
	if errors.Is(err, fapp.ErrNotFound) {
		f.refused++ // taken (or gone) since the patient's index showed it
		return
	}
	if err != nil || r.State != fapp.Angefragt {
		f.dropped++
		return
	}
	f.decisions = append(f.decisions, fappDecision{th: th, id: r.Request.ID, replyTo: from})
	s.push(event{at: s.now.Add(f.cfg.ConfirmDelay.Duration), kind: evFAPPDecide, dyn: len(f.decisions) - 1})
}

// fappDecide confirms a request (or declines it when the slot is taken),
// answers the patient's node, and marks a confirmed slot VERGEBEN (released
// with the next batch).
func (s *Sim) fappDecide(i int) {
	f := s.fapp
	d := f.decisions[i]
	th := d.th
	if !th.n.up {
		s.push(event{at: s.now.Add(time.Minute), kind: evFAPPDecide, dyn: i})
		return
	}
	resp, err := th.book.Confirm(d.id, "", s.now)
	if errors.Is(err, fapp.ErrTransition) {
		resp, err = th.book.Decline(d.id, "", s.now)
	}
	if err != nil {
		s.errs++
		return
	}
	sealed, err := th.book.Seal(rand.NewChaCha8(seedBytes(s.sc.Seed, i, seedFAPPSeal)), d.id, resp, s.now)
	if err != nil {
		s.errs++
		return
	}
	s.fappSend(th.n, d.replyTo, append([]byte{fappToPatient}, sealed...))
	if resp.State == fapp.Bestaetigt {
		if err := th.pub.SetStatus(resp.Slot.Slot, fapp.SlotVergeben, s.now); err == nil {
			s.fappSchedule(th)
		}
	}
}

// fappResponse is the therapist's answer reaching the patient's node.
func (s *Sim) fappResponse(fn *fappNode, sealed []byte) {
	f := s.fapp
	pr, err := fn.book.Open(sealed, s.now)
	if err != nil {
		f.dropped++
		return
	}
	i, ok := f.resByID[pr.Request.ID]
	if !ok || f.res[i].done {
		return
	}
	if pr.State == fapp.Bestaetigt || pr.State == fapp.Abgelehnt {
		rec := f.res[i]
		rec.done, rec.state, rec.at = true, pr.State, s.now
	}
}

// fappFrame counts a region channel frame sent on a link (kind "lora" or
// "link") and returns whether it was one.
func (s *Sim) fappFrame(frame []byte, lora bool) bool {
	if s.fapp == nil || !isRegionFrame(s.fapp, frame) {
		return false
	}
	t := &s.fapp.traffic
	if lora {
		t.loraFrames++
		t.loraBytes += uint64(len(frame))
	} else {
		t.linkFrames++
		t.linkBytes += uint64(len(frame))
	}
	return true
}

// fappGossipBytes counts a gossip message or IHAVE/IWANT of a region topic.
func (s *Sim) fappGossipBytes(t *topic, n int) {
	if s.fapp != nil && t.fapp {
		s.fapp.traffic.gossipMsgs++
		s.fapp.traffic.gossipBytes += uint64(n)
	}
}

// isRegionFrame reports whether frame is a channel frame of a FAPP region.
func isRegionFrame(f *fappState, frame []byte) bool {
	c, err := protocol.ParseChannelFrame(frame)
	if err != nil {
		return false
	}
	_, ok := f.regionOf[c.Channel]
	return ok
}
