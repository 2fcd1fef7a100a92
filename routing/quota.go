package routing

import (
	"errors"
	"fmt"

	"meshd.dev/meshd/protocol"
)

// Custody quotas: who may take how much of the node's custody store.
//
// Records fall into two classes. The node's own messages (origin records)
// may use the whole store. Every
// other record is forwarded traffic and is charged to the pool the node's
// own reserve leaves (CustodyMaxBytes - CustodyOwnReserve), to its
// destination, to its source where the envelope is signed, to the
// neighbour it came from, and, for sealed-sender envelopes, which nobody
// but the recipient can authenticate, to a smaller pool of their own. A
// record is taken only if every charge fits, so no neighbour, source or
// destination can take more than its share, sealed-sender junk cannot
// crowd out signed traffic, and forwarded traffic can never take the
// reserve the node's own messages need.
//
// The charges are kept per record (the record remembers its neighbour and
// source), so releasing a record gives back exactly what it took.

// ErrSealedRateLimited reports a sealed-sender envelope dropped because its
// link sent more of them than its rate allows.
var ErrSealedRateLimited = errors.New("routing: sealed-sender rate exceeded")

// custodyRecOverhead is what a record costs the engine beyond its data: the
// record, its entries in the store's maps and due heap, and the routing
// table entry a record for an unknown destination creates. It is charged
// with the data, so the custody quota bounds the engine's memory, not only
// the bytes of the envelopes (a flood of small envelopes to random
// destinations would otherwise cost several times the quota). Measured by
// BenchmarkFloodMemory (docs/performance.md).
const custodyRecOverhead = 1024

// neighbour names whom a forwarded record came from: the authenticated peer
// of a point-to-point link (so a neighbour that reconnects keeps its
// charges), or the link itself (a radio, or a transport that did not
// authenticate the peer).
type neighbour struct {
	peer Address
	link LinkID
}

func neighbourOf(l *link) neighbour {
	if l.info.Peer.IsZero() || l.info.Shared {
		return neighbour{link: l.info.ID}
	}
	return neighbour{peer: l.info.Peer}
}

// owner says whose an envelope is, in custody and in link queues: the
// node's own (the zero value), or forwarded for neighbour n. A restored
// forwarded record, whose neighbour is gone, is forwarded for the zero
// neighbour.
type owner struct {
	n   neighbour
	fwd bool
}

// ownerOf is the owner of an envelope that came from l (nil: our own).
func ownerOf(l *link) owner {
	if l == nil {
		return owner{}
	}
	return owner{n: neighbourOf(l), fwd: true}
}

// ownerOf is the owner of a record's retries: a forwarded record stays its
// neighbour's in the link queues too.
func (s *custodyStore) ownerOf(r *custodyRec) owner {
	if s.quota.isOwn(r) {
		return owner{}
	}
	return owner{n: r.from, fwd: true}
}

// quotaLimits are the custody limits in bytes, from Config.
type quotaLimits struct {
	total, reserve         int
	perNeighbour           int
	perSource, perDest     int
	sealed, sealedPerNeigh int
}

func limitsOf(c *Config) quotaLimits {
	return quotaLimits{
		total: c.CustodyMaxBytes, reserve: c.CustodyOwnReserve,
		perNeighbour: c.CustodyMaxPerNeighbour, perSource: c.CustodyMaxPerSource, perDest: c.CustodyMaxPerDest,
		sealed: c.CustodySealedMax, sealedPerNeigh: c.CustodySealedPerNeighbour,
	}
}

// custodyQuota keeps the charges of the records in custody.
type custodyQuota struct {
	self Address
	lim  quotaLimits

	own, fwd, sealed int
	byNeighbour      map[neighbour]int
	sealedByNeigh    map[neighbour]int
	bySource, byDest map[Address]int
}

func newCustodyQuota(self Address, lim quotaLimits) *custodyQuota {
	return &custodyQuota{
		self: self, lim: lim,
		byNeighbour: make(map[neighbour]int), sealedByNeigh: make(map[neighbour]int),
		bySource: make(map[Address]int), byDest: make(map[Address]int),
	}
}

// isOwn reports whether r is the node's own message: it may use the
// reserve. Receipts and control envelopes are not, though the node signs
// them: they answer other nodes' traffic, so anyone can make the node owe
// them (messages from an unreachable sender, or from a key it cannot
// fetch, each leave a receipt waiting in custody for up to 30 days). They
// are held as forwarded traffic charged to their destination (and a
// sealed receipt, also while it waits for the key, to the sealed-sender
// pool).
func (q *custodyQuota) isOwn(r *custodyRec) bool {
	if r.typ == protocol.TypeReceipt || r.typ == protocol.TypeControl {
		return false
	}
	return r.origin || r.source == q.self
}

// admit reports whether r fits every quota it would be charged to.
func (q *custodyQuota) admit(r *custodyRec) error {
	n := r.size()
	if q.own+q.fwd+n > q.lim.total {
		return quotaErr("total", q.own+q.fwd, q.lim.total)
	}
	if q.isOwn(r) {
		return nil // the node's own count against the total only
	}
	checks := []struct {
		name        string
		used, limit int
		applies     bool
	}{
		{"forwarded", q.fwd, q.lim.total - q.lim.reserve, true},
		{"destination", q.byDest[r.dest], q.lim.perDest, true},
		{"source", q.bySource[r.source], q.lim.perSource, !r.source.IsZero()},
		{"neighbour", q.byNeighbour[r.from], q.lim.perNeighbour, r.hasFrom},
		{"sealed-sender", q.sealed, q.lim.sealed, r.sealedSender},
		{"sealed-sender neighbour", q.sealedByNeigh[r.from], q.lim.sealedPerNeigh, r.sealedSender && r.hasFrom},
	}
	for _, c := range checks {
		if c.applies && c.used+n > c.limit {
			return quotaErr(c.name, c.used, c.limit)
		}
	}
	return nil
}

func quotaErr(name string, used, limit int) error {
	return fmt.Errorf("%s quota: %d of %d bytes used: %w", name, used, limit, ErrCustodyFull)
}

// charge adds r to the quotas (the store's add calls it; admit decided
// before) and remembers what it charged: a record's data can change while
// it is kept (a pending body is sealed), and release must give back exactly
// what was taken.
func (q *custodyQuota) charge(r *custodyRec) {
	r.charged = r.size()
	q.add(r, r.charged)
}

// release gives back what r was charged.
func (q *custodyQuota) release(r *custodyRec) { q.add(r, -r.charged) }

// cloneFrame copies a frame that may be kept (forwarded, or in custody).
// A copy over 16 KiB gets whole 8 KiB pages, which Go's allocator gives a
// span of its own: between 16 and 32 KiB it packs two to four objects in a
// span, and a kept copy among freed ones of the same size (the signature
// check and the store encode copies of the same envelope) pins the whole
// span, up to four times its size. The record is charged its capacity.
func cloneFrame(b []byte) []byte {
	n := len(b)
	if n > 16<<10 {
		n = (n + 8<<10 - 1) &^ (8<<10 - 1)
	}
	return append(make([]byte, 0, n), b...)
}

func (q *custodyQuota) add(r *custodyRec, n int) {
	if q.isOwn(r) {
		q.own += n
		return
	}
	q.fwd += n
	addTo(q.byDest, r.dest, n)
	if !r.source.IsZero() {
		addTo(q.bySource, r.source, n)
	}
	if r.hasFrom {
		addTo(q.byNeighbour, r.from, n)
	}
	if r.sealedSender {
		q.sealed += n
		if r.hasFrom {
			addTo(q.sealedByNeigh, r.from, n)
		}
	}
}

// addTo adds n to m[k], forgetting k at zero so that the maps hold only
// keys with records: a flood to random destinations leaves nothing behind.
func addTo[K comparable](m map[K]int, k K, n int) {
	if v := m[k] + n; v > 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}

// chargeTo sets whom a new record is charged to: the neighbour it came
// from (none for the node's own) and its source, when the envelope is
// signed.
func (r *custodyRec) chargeTo(from owner, env *protocol.Envelope) {
	r.from, r.hasFrom = from.n, from.fwd
	r.source, _ = env.Source()
}

// restoreCharged adds a restored record. The node's own records are always
// kept; forwarded ones wait for finishRestore, so that they are checked
// against the quotas after every own record is in.
func (e *Engine) restoreCharged(r *custodyRec) {
	if !r.origin {
		if env, err := protocol.ParseEnvelope(r.data); err == nil { // decodeCustody checked it
			r.source, _ = env.Source()
		}
	}
	if e.custody.quota.isOwn(r) {
		e.custody.add(r)
		return
	}
	e.restoring = append(e.restoring, r)
	if e.restoringKeys == nil {
		e.restoringKeys = make(map[envKey]struct{})
	}
	e.restoringKeys[r.key] = struct{}{}
}

// finishRestore adds the forwarded records that fit the quotas, charged to
// their source and destination (their neighbour is not known after a
// restart), and deletes the rest: a store written with larger quotas, or by
// a version without them, must not take the node's own reserve.
func (e *Engine) finishRestore() {
	for _, r := range e.restoring {
		if err := e.custody.quota.admit(r); err != nil {
			e.del(custodyKey(r.key))
			e.counters.CustodyRestoreDropped++
			continue
		}
		e.custody.add(r)
	}
	e.restoring = nil
	clear(e.restoringKeys)
}

// isRestoring reports whether a forwarded record with key k waits for
// finishRestore.
func (e *Engine) isRestoring(k envKey) bool {
	_, ok := e.restoringKeys[k]
	return ok
}

// admitSealed applies a link's rate limit to a sealed-sender envelope that
// this node would forward or keep: such envelopes carry no signature, so
// nothing else stops a neighbour from sending them as fast as its link
// goes, into custody or into other links' queues.
func (e *Engine) admitSealed(l *link, env *protocol.Envelope, n int) error {
	if env.Flags&protocol.FlagSealedSender == 0 || env.Dest == e.self {
		return nil
	}
	if l.sealedRate.take(float64(n), e.now, float64(e.cfg.SealedSenderRate), e.cfg.SealedSenderBurst) {
		return nil
	}
	e.counters.SealedRateLimited++
	return fmt.Errorf("envelope %v on link %d: %w", env.ID, l.info.ID, ErrSealedRateLimited)
}

// Queues. A link's queue is shared by the node's own frames (its messages,
// custody retries, receipts, routing) and envelopes forwarded straight
// through for neighbours. The rule that keeps one neighbour from taking
// the queue: a neighbour's forwarded envelopes may hold at most half of
// the queue's bytes (one always fits while it has none queued), and they
// never displace the node's own frames; the node's own frames displace
// forwarded ones of the same or lower priority, newest first (see
// linkQueue.push).

// queueDropped counts frames a queue displaced. A displaced envelope that
// waited for a hop ack no longer does, and a custody record that had
// handed it over is retried later instead of waiting for a route change.
func (e *Engine) queueDropped(l *link, dropped []qitem) {
	e.counters.QueueDrops += uint64(len(dropped))
	for _, it := range dropped {
		if !it.hasRelease {
			continue
		}
		if w := e.hopAcks[it.release]; w != nil && w.link == l.info.ID && w.deadline.IsZero() && !w.handed {
			e.dropWait(it.release)
		}
		if r := e.custody.get(it.release); r != nil && r.nextTry.IsZero() {
			e.backoff(r)
		}
	}
}
