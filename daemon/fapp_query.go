package daemon

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
)

// Remote queries travel on one public channel that FAPP relays and nodes
// using FAPP join (docs/fapp.md, "Transport"). Its messages carry the pure
// package's RemoteQuery and a QueryAnswer sealed with fapp.SealMessage:
//
//	0x91 | remote query (fapp encoding)          a query (broadcast)
//	0x92 | query ID 16 | sealed answer            an answer (broadcast)
//
// The query carries a fresh random ID and a fresh ephemeral identity made
// for this one query; nothing in it names the node that asks, and the
// answer is a broadcast too, so nobody learns which node asked. The relay
// seals the answer to the query's identity (a sealed-sender envelope,
// padded to the envelope's size buckets), so only the asker can read which
// announces matched. Announces and profiles stay signed by their
// therapists: a relay can leave things out but cannot forge them; the
// asker verifies each (fapp.AnswerIndex) and runs the query again on what
// it got.
const (
	queryMsg       = 0x91
	answerMsg      = 0x92
	queryIDSize    = fapp.QueryIDSize
	maxQueryAge    = 10 * time.Minute // older queries are not answered
	answerTTL      = 10 * time.Minute
	maxQueryAnswer = 64 // answers kept per pending query
	defaultWaitFor = 3 * time.Second
)

// pendingQuery is a remote query waiting for answers.
type pendingQuery struct {
	id      *protocol.Identity // the ephemeral identity answers are sealed to
	answers []*fapp.QueryAnswer
	got     chan struct{} // signalled (non-blocking) per answer
}

// onQueryFrame handles a message of the query channel. Loop only.
func (f *fappNode) onQueryFrame(body []byte, now time.Time) {
	if len(body) < 1+queryIDSize {
		f.drop("query", fapp.ErrTruncated)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch body[0] {
	case queryMsg:
		if f.relay {
			f.answerLocked(body[1:], now)
		}
	case answerMsg:
		var id fapp.QueryID
		copy(id[:], body[1:])
		if pq := f.queries[id]; pq != nil {
			f.takeAnswerLocked(pq, id, body[1+queryIDSize:], now)
		}
	default:
		f.drop("query", fapp.ErrUnknownVersion)
	}
}

// answerLocked answers a remote query from the index. Relays only.
func (f *fappNode) answerLocked(raw []byte, now time.Time) {
	m, err := fapp.ParseMessage(raw)
	if err != nil {
		f.drop("query", err)
		return
	}
	rq, ok := m.(*fapp.RemoteQuery)
	switch {
	case !ok:
		f.drop("query", fapp.ErrUnknownVersion)
		return
	case f.queries[rq.ID] != nil:
		return // this node's own query
	case now.Sub(rq.Created) > maxQueryAge || rq.Created.Sub(now) > clockSkew:
		// A query replayed later (or dated ahead) is not answered: an
		// answer tells nothing new, but it costs a broadcast.
		f.drop("query", fapp.ErrExpired)
		return
	}
	ans, err := f.idx.Answer(rq, now)
	if err == nil {
		raw, err = ans.MarshalBinary()
	}
	var sealed []byte
	if err == nil {
		sealed, err = fapp.SealMessage(randReader, f.n.id, rq.ReplyTo, raw, now, answerTTL)
	}
	if err != nil {
		f.drop("query", err)
		return
	}
	f.stats.add("queries_answered", 1)
	f.queue(fappOut{channel: queriesKey(), body: slices.Concat([]byte{answerMsg}, rq.ID[:], sealed)})
}

// takeAnswerLocked opens an answer to a pending query and keeps it.
func (f *fappNode) takeAnswerLocked(pq *pendingQuery, id fapp.QueryID, sealed []byte, now time.Time) {
	m, _, err := fapp.OpenMessage(pq.id, sealed, now)
	if err != nil {
		f.drop("answer", err)
		return
	}
	a, ok := m.(*fapp.QueryAnswer)
	if !ok || a.ID != id {
		f.drop("answer", fapp.ErrMismatch)
		return
	}
	if len(pq.answers) < maxQueryAnswer {
		pq.answers = append(pq.answers, a)
	}
	select {
	case pq.got <- struct{}{}:
	default:
	}
}

// remoteQuery sends q to the relays and collects answers for wait (or
// until ctx ends), then runs q over the verified announces. It returns the
// results and the number of answers.
func (f *fappNode) remoteQuery(ctx context.Context, q fapp.Query, wait time.Duration) ([]fapp.Result, int, error) {
	tmp, answers, err := f.ask(ctx, q, wait)
	if err != nil {
		return nil, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.n.now()
	for _, r := range regionsOfPrefix(q.PLZPrefix) {
		for _, a := range tmp.Announces(r) {
			f.rememberLocked(a, tmp.Profile(a.Therapist), now)
		}
	}
	res, err := tmp.Query(q, now)
	return res, answers, err
}

// ask sends q to the relays and returns an index of what their answers
// brought that verifies, and the number of answers.
func (f *fappNode) ask(ctx context.Context, q fapp.Query, wait time.Duration) (*fapp.Index, int, error) {
	eph, err := protocol.NewIdentity(randReader)
	if err != nil {
		return nil, 0, err
	}
	rq := fapp.RemoteQuery{ReplyTo: eph.Public(), Created: f.n.now().Truncate(time.Second), Query: q}
	if _, err := io.ReadFull(randReader, rq.ID[:]); err != nil {
		return nil, 0, err
	}
	raw, err := rq.MarshalBinary()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
	}
	pq := &pendingQuery{id: eph, got: make(chan struct{}, 1)}
	f.mu.Lock()
	f.queries[rq.ID] = pq
	if !f.queriesUsed {
		// From now on the node stays on the query channel, so that joining
		// it does not announce each query to the gossip peers.
		f.queriesUsed = true
		f.write(store.FAPPBatch{Put: map[string][]byte{keyQueriesUsed: {1}}})
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.queries, rq.ID)
		f.mu.Unlock()
	}()
	if err := f.n.call(ctx, func() {
		f.syncChannels()
		f.n.sendFAPP(fappOut{channel: queriesKey(), body: append([]byte{queryMsg}, raw...)})
	}); err != nil {
		return nil, 0, err
	}
	if wait <= 0 {
		wait = defaultWaitFor
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	all := &fapp.QueryAnswer{}
	for _, a := range pq.answers {
		all.Announces = append(all.Announces, a.Announces...)
		all.Profiles = append(all.Profiles, a.Profiles...)
	}
	tmp, refused := fapp.AnswerIndex(all, fapp.IndexConfig{Trust: f.trust, ClockSkew: clockSkew}, f.n.now())
	if refused > 0 {
		// Copies from several relays are refused as stale; forgeries too.
		f.stats.add("answer_items_refused", uint64(refused))
	}
	return tmp, len(pq.answers), nil
}

// syncRegion fills the index with a newly followed region's announces,
// asked of the relays: gossip does not replay what was published before
// the node subscribed, and announces are refreshed only every half
// lifetime.
func (f *fappNode) syncRegion(ctx context.Context, r fapp.Region) {
	tmp, _, err := f.ask(ctx, fapp.Query{PLZPrefix: r.String(), Limit: fapp.MaxQueryLimit}, 0)
	if err != nil {
		return
	}
	now := f.n.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	b := store.FAPPBatch{Put: map[string][]byte{}}
	for _, a := range tmp.Announces(r) {
		raw, err := a.MarshalBinary()
		if err != nil || f.idx.Add(a.Clone(), now) != nil {
			continue
		}
		b.Put[announceKey(a.Therapist)] = raw
		if p := tmp.Profile(a.Therapist); p != nil && f.idx.AddProfile(p, now) == nil {
			if praw, err := p.MarshalBinary(); err == nil {
				b.Put[profileKey(a.Therapist)] = praw
			}
		}
	}
	if len(b.Put) > 0 {
		f.stats.add("region_syncs", 1)
		f.write(b)
		f.signal()
	}
}

// rememberLocked keeps a remote announce and profile (bounded: the least
// recently touched entry goes first). A profile is kept only if it is the
// one the kept announce names: a relay's stale answer (an older announce
// with its older profile) must not replace the profile the newer announce
// needs to be reserved.
func (f *fappNode) rememberLocked(a *fapp.SlotAnnounce, p *fapp.Profile, now time.Time) {
	e := f.remote[a.Therapist]
	if e == nil {
		if len(f.remote) >= fappRemoteCache {
			var oldest fapp.TherapistKey
			first := true
			for k, v := range f.remote {
				if first || v.touched.Before(f.remote[oldest].touched) {
					oldest, first = k, false
				}
			}
			delete(f.remote, oldest)
		}
		e = &remoteEntry{}
		f.remote[a.Therapist] = e
	}
	if e.a == nil || a.Sequence >= e.a.Sequence {
		e.a = a
	}
	if p != nil && mustRef(p) == e.a.Profile {
		e.p = p
	}
	e.touched = now
}

// pruneRemoteLocked forgets expired remote announces.
func (f *fappNode) pruneRemoteLocked(now time.Time) {
	for k, e := range f.remote {
		if e.a.Expired(now) {
			delete(f.remote, k)
		}
	}
}
