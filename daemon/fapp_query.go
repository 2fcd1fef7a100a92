package daemon

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

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
	res, err := f.resultsLocked(pq, q, f.n.now())
	return res, len(pq.answers), err
}

// resultsLocked verifies what the answers brought, keeps it in the remote
// cache and runs q over it.
func (f *fappNode) resultsLocked(pq *pendingQuery, q fapp.Query, now time.Time) ([]fapp.Result, error) {
	all := &fapp.QueryAnswer{}
	for _, a := range pq.answers {
		all.Announces = append(all.Announces, a.Announces...)
		all.Profiles = append(all.Profiles, a.Profiles...)
	}
	tmp, refused := fapp.AnswerIndex(all, fapp.IndexConfig{Trust: f.trust, ClockSkew: clockSkew}, now)
	if refused > 0 {
		// Copies from several relays are refused as stale; forgeries too.
		f.stats.add("answer_items_refused", uint64(refused))
	}
	for _, r := range regionsOfPrefix(q.PLZPrefix) {
		for _, a := range tmp.Announces(r) {
			f.rememberLocked(a, tmp.Profile(a.Therapist), now)
		}
	}
	return tmp.Query(q, now)
}

// rememberLocked keeps a remote announce and profile (bounded: the least
// recently touched entry goes first).
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
	if p != nil {
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
