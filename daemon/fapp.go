package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/routing"
)

// FAPP in the daemon: the pure fapp package holds the rules (encodings,
// signatures, the index, the reservation state machines, the publisher);
// this side carries its objects over the mesh, keeps them in badger and
// serves the fapp.* API. docs/fapp.md § 12 (Transport) describes the design.
//
// Concurrency: every FAPP structure sits under fappNode.mu, so an API call
// answered from local state (a query for a followed region) never waits
// for, or touches, the node loop: it sends nothing. Whatever goes out is
// stepped into the engine on the loop; code holding mu never waits for the
// loop (the loop takes mu while it handles deliveries).

// Daemon-side FAPP limits.
const (
	// fappProfileRequestEvery bounds how often the node asks for, or
	// answers a request for, one therapist's profile.
	fappProfileRequestEvery = time.Minute
	// fappPoll is how often the FAPP ticker looks at the publisher and the
	// reservation books (cheap; a test's clock may jump).
	fappPoll = time.Second
	// fappPruneEvery is how often the index drops expired announces and
	// re-verifies credentials (validity periods end).
	fappPruneEvery = time.Minute
	// fappEarlyReleases is how many announces per epoch may carry the
	// therapist's own edits (profile, slot list) at once instead of at the
	// boundary: a new offer is found in seconds, a script that edits in a
	// loop still sends a bounded number. Reservations stay batched.
	fappEarlyReleases = 6
	// fappRemoteCache bounds the announces and profiles kept from remote
	// query answers (for reserving a slot found that way).
	fappRemoteCache = 1024
)

// fappNode is the daemon's FAPP state.
type fappNode struct {
	n *Node

	mu    sync.Mutex
	idx   *fapp.Index
	trust *fapp.TrustStore
	// follow: regions followed by configuration and by apps; relay
	// follows all. joined: the region channels joined now.
	followCfg, followAPI map[fapp.Region]bool
	relay                bool
	joined               map[fapp.Region]bool
	queriesJoined        bool
	queriesUsed          bool // a remote query was made (persisted)

	// Own offer (therapist side).
	pub        *fapp.Publisher
	template   *fapp.SlotAnnounce // announce-level data, nil until set
	profile    *fapp.Profile      // own signed profile, nil until set
	profileRaw []byte
	credential *fapp.Credential
	lastRaw    []byte // the last own announce released
	// slotMark is the highest slot ID ever published (fapp_slotid.go).
	slotMark uint16
	// profileSent is the sequence of the own profile last broadcast.
	profileSent uint32
	pruned      time.Time // last Index.Prune

	book    *fapp.Book
	replyTo map[fapp.RequestID]protocol.Address // patient node per reservation
	// patient is the patient book, under patMu (taken after mu when both
	// are held): a request's stamp is minted under neither
	// (PatientBook.Prepare), for mu's holders wait for patMu.
	patMu   sync.Mutex
	patient *fapp.PatientBook

	// remote holds what remote answers brought: announces and profiles of
	// regions the node does not follow.
	remote map[fapp.TherapistKey]*remoteEntry
	// dropped lists the therapists whose announce the index dropped since
	// the last tick: their stored announce and profile are deleted then.
	dropped []fapp.TherapistKey

	queries  map[fapp.QueryID]*pendingQuery
	profAsk  map[fapp.TherapistKey]time.Time // last profile request sent
	profSent map[fapp.TherapistKey]time.Time // last profile request answered
	stats    fappStats
	kick     chan struct{}
	inflight []fappOut // built under mu, sent on the loop
	// The outbox (fapp_outbox.go): the last stored message's number
	// (under mu), and, the loop's alone, the engine refs of stored
	// messages handed to the engine and the keys of those it has taken.
	outSeq  uint64
	outRefs map[uint64]string
	outDone []string
	// later holds refusals until the epoch boundary at which the status
	// they reveal goes public (fapp_outbox.go).
	later []fappOut
	// earlySeq holds the inbox entries of patients' cancels that came
	// before their requests (fapp_outbox.go).
	earlySeq map[fapp.RequestID]uint64
	// afterWrite, when set (tests), sees every batch written: what a
	// crash right after it would leave in the store.
	afterWrite func(store.FAPPBatch)
	// mintCheck, when set (tests), sees every stop check of a stamp being
	// minted (reserve), with the call's context and the nonces tried so
	// far.
	mintCheck func(ctx context.Context, tried uint64)
	// changed is signalled (without blocking) whenever the index or a
	// reservation changed: tests wait on it instead of sleeping.
	changed chan struct{}
}

type remoteEntry struct {
	a       *fapp.SlotAnnounce
	p       *fapp.Profile
	touched time.Time
}

// fappOut is something to send: a broadcast on a FAPP channel or a
// sealed-sender unicast of type FAPP.
type fappOut struct {
	channel protocol.ChannelKey
	dest    protocol.Address
	body    []byte
	unicast bool
	ttl     time.Duration
	ref     uint64
	key     string // the outbox key of a stored unicast (fapp_outbox.go)
	// notBefore holds a refusal until the next epoch boundary.
	notBefore time.Time
}

// errFAPPStore wraps a failed FAPP write.
var errFAPPStore = errors.New("daemon: fapp: store")

// newFAPP builds the FAPP state from the configuration and the store. It
// runs in Open, before the loop starts.
func newFAPP(n *Node) (*fappNode, error) {
	cfg := n.cfg.FAPP
	f := &fappNode{
		n: n, followCfg: map[fapp.Region]bool{}, followAPI: map[fapp.Region]bool{},
		relay: cfg.Relay || n.cfg.Relay, joined: map[fapp.Region]bool{}, replyTo: map[fapp.RequestID]protocol.Address{},
		remote: map[fapp.TherapistKey]*remoteEntry{}, queries: map[fapp.QueryID]*pendingQuery{},
		profAsk: map[fapp.TherapistKey]time.Time{}, profSent: map[fapp.TherapistKey]time.Time{}, kick: make(chan struct{}, 1),
		outRefs: map[uint64]string{}, earlySeq: map[fapp.RequestID]uint64{},
		changed: make(chan struct{}, 1),
	}
	f.stats.init()
	f.trust = fapp.NewTrustStore()
	for _, s := range cfg.TrustedIssuers {
		k, err := fapp.ParseIssuerKey(s)
		if err != nil {
			return nil, fmt.Errorf("%w: fapp.trusted_issuers: %v", ErrConfig, err)
		}
		f.trust.Trust(k)
	}
	for _, s := range cfg.Regions {
		r, err := fapp.ParseRegion(s)
		if err != nil {
			return nil, fmt.Errorf("%w: fapp.regions: %v", ErrConfig, err)
		}
		f.followCfg[r] = true
	}
	f.idx = fapp.NewIndex(fapp.IndexConfig{Trust: f.trust, ClockSkew: clockSkew,
		OnDrop: func(k fapp.TherapistKey) { f.dropped = append(f.dropped, k) }})
	var err error
	f.book, err = fapp.NewBook(fapp.BookConfig{Identity: n.id, Offers: f.offersLocked, Occurs: f.occursLocked})
	if err != nil {
		return nil, err
	}
	f.patient = fapp.NewPatientBook(fapp.PatientBookConfig{})
	if err := f.restore(n.now()); err != nil {
		return nil, err
	}
	return f, nil
}

// following reports whether the node follows region r: configured, by an
// app, as a relay, or the region of its own practice. Caller holds mu.
func (f *fappNode) following(r fapp.Region) bool {
	return f.relay || f.followCfg[r] || f.followAPI[r] || f.template != nil && f.template.Region() == r
}

// wanted returns the regions the node should have joined. Caller holds mu.
func (f *fappNode) wanted() []fapp.Region {
	if f.relay {
		return fapp.Regions()
	}
	var out []fapp.Region
	for _, r := range fapp.Regions() {
		if f.following(r) {
			out = append(out, r)
		}
	}
	return out
}

// inUse reports whether the node takes part in FAPP at all (and so joins
// the query channel). Caller holds mu.
func (f *fappNode) inUse() bool {
	return f.relay || len(f.followCfg) > 0 || len(f.followAPI) > 0 || f.template != nil || f.queriesUsed
}

// syncChannels joins and leaves region channels to match what is wanted.
// Loop only (or before the loop starts).
func (f *fappNode) syncChannels() {
	f.mu.Lock()
	want := f.wanted()
	var join, leave []fapp.Region
	for _, r := range want {
		if !f.joined[r] {
			join = append(join, r)
			f.joined[r] = true
		}
	}
	for r := range f.joined {
		if !slices.Contains(want, r) {
			leave = append(leave, r)
			delete(f.joined, r)
		}
	}
	joinQ := !f.queriesJoined && f.inUse()
	f.queriesJoined = f.queriesJoined || joinQ
	f.mu.Unlock()
	for _, r := range join {
		if err := f.n.joinFAPPChannel(regionKey(r)); err != nil {
			f.n.log.Warn("cannot follow a FAPP region", "err", err) // which region a patient follows is not logged
		}
	}
	for _, r := range leave {
		if err := f.n.leaveFAPPChannel(regionKey(r)); err != nil {
			f.n.log.Warn("cannot leave a FAPP region", "err", err)
		}
	}
	if joinQ {
		for _, k := range []protocol.ChannelKey{queriesKey(), nationalKey()} {
			if err := f.n.joinFAPPChannel(k); err != nil {
				f.n.log.Warn("cannot join a FAPP channel", "channel", k.ID(), "err", err)
			}
		}
	}
}

// regionOf returns the region whose channel has id, if the node follows it.
func (f *fappNode) regionOf(id protocol.ChannelID) (fapp.Region, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for r := range f.joined {
		if regionKey(r).ID() == id {
			return r, true
		}
	}
	return 0, false
}

// takeBroadcasts handles the deliveries of FAPP channels and returns the
// others. Loop only.
func (f *fappNode) takeBroadcasts(ds []routing.Delivery) []routing.Delivery {
	if len(ds) == 0 {
		return ds
	}
	now := f.n.now()
	qid, nid := queriesKey().ID(), nationalKey().ID()
	out := ds[:0:0]
	for _, d := range ds {
		switch {
		case d.Channel == qid && f.n.chans.isFAPP(qid):
			f.onQueryFrame(d.Body, now)
		case d.Channel == nid && f.n.chans.isFAPP(nid):
			if len(d.Body) > 0 && d.Body[0] == regionRevocation {
				f.onRegionFrame(0, d.Body, now)
			} else {
				f.drop("national", fapp.ErrUnknownVersion)
			}
		case f.n.chans.isFAPP(d.Channel):
			if r, ok := f.regionOf(d.Channel); ok {
				f.onRegionFrame(r, d.Body, now)
			}
		default:
			out = append(out, d)
		}
	}
	return out
}

// openFAPP builds the FAPP side, joins its channels and processes FAPP
// messages a crash left in the inbox. Open only.
func (n *Node) openFAPP() error {
	f, err := newFAPP(n)
	if err != nil {
		return err
	}
	n.fapp = f
	f.scopeRegions()
	f.syncChannels()
	if err := f.recoverOutbox(); err != nil {
		return err
	}
	if err := f.recoverInbox(); err != nil {
		return err
	}
	f.flush()
	return nil
}

// scopeRegions marks every region channel as scoped in the engine: on
// mesh links only nodes following a region relay its frames, so a radio
// carries the regions its node follows, not all of them (docs/fapp.md
// § 12). FAPP relays follow every region and so still relay them all.
// Open only.
func (f *fappNode) scopeRegions() {
	for _, r := range fapp.Regions() {
		f.n.step(routing.ScopeChannel{Channel: regionKey(r).ID(), Scoped: true})
	}
}

// flush sends what handlers queued. Loop only.
func (f *fappNode) flush() {
	f.mu.Lock()
	outs := f.inflight
	f.inflight = nil
	f.mu.Unlock()
	done := f.outDone
	f.outDone = nil
	for i := range outs {
		if outs[i].key != "" {
			f.n.nextRef++
			outs[i].ref = f.n.nextRef
			f.outRefs[outs[i].ref] = outs[i].key
		}
	}
	for _, o := range outs {
		f.n.sendFAPP(o)
	}
	if len(done) > 0 {
		f.write(store.FAPPBatch{Delete: done})
	}
}

// queue adds a message to send at the next flush. Caller holds mu.
func (f *fappNode) queue(o fappOut) { f.inflight = append(f.inflight, o) }

// sendFAPP steps one FAPP message into the engine. Loop only.
func (n *Node) sendFAPP(o fappOut) {
	if o.unicast {
		n.step(routing.SendRequest{Ref: o.ref, Dest: o.dest, Body: o.body, Type: protocol.TypeFAPP, TTL: o.ttl, SealedSender: true})
		return
	}
	n.step(routing.Broadcast{Ref: o.ref, Channel: o.channel, Body: o.body})
}

// tick runs the publisher and the reservation books' expiry. Loop only.
func (f *fappNode) tick() {
	now := f.n.now()
	f.mu.Lock()
	f.releaseLocked(now)
	f.expireLocked(now)
	f.releaseLaterLocked(now)
	if now.Sub(f.pruned) >= fappPruneEvery {
		// Prune re-verifies every cached credential: not every second.
		f.pruned = now
		if n := f.idx.Prune(now); n > 0 {
			f.stats.add("expired", uint64(n))
		}
		f.dropUnfollowedLocked()
		f.forgetLocked(now)
		f.forgetEarlyLocked()
		for _, m := range []map[fapp.TherapistKey]time.Time{f.profAsk, f.profSent} {
			maps.DeleteFunc(m, func(_ fapp.TherapistKey, at time.Time) bool { return now.Sub(at) >= fappProfileRequestEvery })
		}
	}
	f.deleteDroppedLocked()
	f.pruneRemoteLocked(now)
	f.mu.Unlock()
	f.flush()
}

// forgetLocked lets the therapist's book forget reservations that can no
// longer matter (Book.Sweep) and deletes them from the store, which would
// otherwise restore them at every start and grow without bound.
func (f *fappNode) forgetLocked(now time.Time) {
	var b store.FAPPBatch
	for _, id := range f.book.Sweep(now) {
		delete(f.replyTo, id)
		b.Delete = append(b.Delete, therapistResKey(id))
	}
	if t := f.book.ForgotUntil(); len(b.Delete) > 0 && !t.IsZero() {
		// In the batch of the deletions: a replay of a request forgotten
		// for room is refused after a restart too (the stamp verifier's
		// spent stamps are not stored).
		b.Put = map[string][]byte{keyForgotUntil: binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))}
	}
	// The patient's finished reservations go too (PatientBook.Sweep): a
	// confirmation is the patient's proof until a lifetime after the
	// appointment.
	f.patMu.Lock()
	gone := f.patient.Sweep(now)
	f.patMu.Unlock()
	for _, id := range gone {
		b.Delete = append(b.Delete, patientResKey(id))
	}
	f.write(b)
}

// deleteDroppedLocked deletes from the store what the index dropped
// (evicted or expired), unless the therapist is held again by now: the
// store holds no more than the index, whatever a flood of keys brings.
func (f *fappNode) deleteDroppedLocked() {
	var del []string
	for _, k := range f.dropped {
		if f.idx.Get(k) == nil {
			del = append(del, announceKey(k), profileKey(k))
		}
	}
	f.dropped = nil
	f.deleteKeys(del)
}

// dropUnfollowedLocked drops from the index the announces of regions the
// node no longer follows (an app unfollowed them); the store follows at
// staleAnnounceKeysLocked.
func (f *fappNode) dropUnfollowedLocked() {
	for _, r := range fapp.Regions() {
		if f.idx.RegionLen(r) > 0 && !f.following(r) {
			f.stats.add("unfollowed_dropped", uint64(f.idx.DropRegion(r)))
		}
	}
}

// runTicker drives tick until the node stops: every fappPoll, and at once
// after a kick (a change through the API).
func (f *fappNode) runTicker() {
	t := time.NewTicker(fappPoll)
	defer t.Stop()
	for {
		select {
		case <-f.n.ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
		if !f.n.enqueue(f.tick) {
			return
		}
	}
}

// signal tells a waiting test that something changed.
func (f *fappNode) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// poke asks the ticker for a tick now.
func (f *fappNode) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// write persists a FAPP batch; a failure is logged (the state in memory
// stays, and is written again with the next change).
func (f *fappNode) write(b store.FAPPBatch) error {
	if len(b.Put) == 0 && len(b.Delete) == 0 && len(b.Ack) == 0 {
		return nil
	}
	if err := f.n.st.FAPPWrite(b); err != nil {
		f.n.log.Error("cannot store FAPP state", "err", err)
		return fmt.Errorf("%w: %w", errFAPPStore, err)
	}
	if f.afterWrite != nil {
		f.afterWrite(b)
	}
	return nil
}

// randReader is the randomness of FAPP's daemon side (IDs, ephemeral
// keys, sealing): crypto/rand, like channel keys.
var randReader = rand.Reader
