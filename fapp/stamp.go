package fapp

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// Proof-of-work stamps make a reservation request cost the sender CPU time
// without naming anyone: hashcash over SHA-256, bound to the slot, the
// request ID and a time bucket. One person can still hold a slot, but
// holding every slot of a region costs as many stamps as there are slots,
// and a stamp is worth exactly one request.

// Stamp defaults.
const (
	// DefaultStampBits is the default difficulty: about 2^20 SHA-256
	// evaluations, a fraction of a second on a phone (docs/performance.md).
	DefaultStampBits = 20
	// MaxStampBits bounds the difficulty a verifier can demand.
	MaxStampBits = 40
	// DefaultStampBucket is the default length of a time bucket.
	DefaultStampBucket = 10 * time.Minute
	// StampSize is the size of an encoded stamp.
	StampSize  = 4 + 1 + 8
	labelStamp = "fapp/stamp/v1"
)

// Stamp is a proof of work: SHA-256("fapp/stamp/v1" || 0 || therapist key ||
// slot ID || request ID || bucket || bits || nonce) starts with Bits zero
// bits. Bucket is the Unix time divided by the bucket length.
type Stamp struct {
	Bucket uint32
	Bits   uint8
	Nonce  uint64
}

func (s Stamp) appendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, s.Bucket)
	b = append(b, s.Bits)
	return binary.BigEndian.AppendUint64(b, s.Nonce)
}

func readStamp(r *reader) Stamp {
	return Stamp{Bucket: r.u32("stamp bucket"), Bits: r.u8("stamp bits"), Nonce: r.u64("stamp nonce")}
}

// stampHash is the hash a stamp's work is measured on.
func stampHash(slot SlotRef, req RequestID, s Stamp) [sha256.Size]byte {
	b := make([]byte, 0, len(labelStamp)+1+32+2+len(req)+StampSize)
	b = append(b, labelStamp...)
	b = append(b, 0)
	b = append(b, slot.Therapist[:]...)
	b = binary.BigEndian.AppendUint16(b, slot.Slot)
	b = append(b, req[:]...)
	return sha256.Sum256(s.appendTo(b))
}

func leadingZeroBits(h [sha256.Size]byte) int {
	n := 0
	for i := 0; i < len(h); i += 8 {
		w := binary.BigEndian.Uint64(h[i:])
		n += bits.LeadingZeros64(w)
		if w != 0 {
			break
		}
	}
	return n
}

// stampBucket returns the bucket number of now.
func stampBucket(now time.Time, bucket time.Duration) uint32 {
	return uint32(now.Unix() / int64(bucket/time.Second))
}

// MintStamp searches a stamp of difficulty bits for a request for slot at
// now (bucket is the verifier's bucket length, DefaultStampBucket if 0). It
// tries at most maxTries nonces (0: no limit beyond 2^64) and fails with
// ErrLimit when none works, so a caller can bound the time it spends. The
// expected cost is 2^bits hashes.
func MintStamp(slot SlotRef, req RequestID, bits uint8, bucket time.Duration, now time.Time, maxTries uint64) (Stamp, error) {
	return MintStampUntil(slot, req, bits, bucket, now, maxTries, nil)
}

// StampCheckEvery is how many nonces MintStampUntil tries between two
// calls of its stop check: some 0.5 ms of one core here, a few on a
// phone (docs/fapp.md, section 9).
const StampCheckEvery = 1 << 12

// MintStampUntil is MintStamp that its caller can give up: before the
// first nonce and after every StampCheckEvery of them it calls stop (nil:
// never) with the number of nonces tried so far, and when stop returns
// true it fails with ErrStopped at once. 28 bits are minutes of a phone's
// CPU: a caller whose client went away stops paying for them.
func MintStampUntil(slot SlotRef, req RequestID, bits uint8, bucket time.Duration, now time.Time, maxTries uint64, stop func(tried uint64) bool) (Stamp, error) {
	if bits > MaxStampBits {
		return Stamp{}, fmt.Errorf("mint stamp: %d bits, limit %d: %w", bits, MaxStampBits, ErrStamp)
	}
	if bucket <= 0 {
		bucket = DefaultStampBucket
	}
	s := Stamp{Bucket: stampBucket(now, bucket), Bits: bits}
	for i := uint64(0); maxTries == 0 || i < maxTries; i++ {
		if stop != nil && i%StampCheckEvery == 0 && stop(i) {
			return Stamp{}, fmt.Errorf("mint stamp: given up after %d tries: %w", i, ErrStopped)
		}
		s.Nonce = i
		if leadingZeroBits(stampHash(slot, req, s)) >= int(bits) {
			return s, nil
		}
		if i == ^uint64(0) {
			break
		}
	}
	return Stamp{}, fmt.Errorf("mint stamp: no %d-bit stamp in %d tries: %w", bits, maxTries, ErrLimit)
}

// StampConfig configures a StampVerifier. Zero fields take the defaults.
type StampConfig struct {
	MinBits uint8         // default DefaultStampBits
	Bucket  time.Duration // default DefaultStampBucket
	// MaxAge is how old a request (and so its stamp) may be when it
	// arrives: requests wait in custody while the therapist is offline.
	// Default DefaultRequestTTL.
	MaxAge     time.Duration
	MaxEntries int // spent stamps remembered, default 100,000
}

// StampVerifier checks stamps and remembers the spent ones until they are
// too old to be accepted anyway, so a stamp is worth one request. It is not
// safe for concurrent use.
type StampVerifier struct {
	cfg   StampConfig
	spent map[[sha256.Size]byte]time.Time // hash -> when it can be forgotten
	order [][sha256.Size]byte             // insertion order, for pruning and the bound
}

// NewStampVerifier returns a verifier.
func NewStampVerifier(cfg StampConfig) *StampVerifier {
	if cfg.MinBits == 0 {
		cfg.MinBits = DefaultStampBits
	}
	if cfg.Bucket <= 0 {
		cfg.Bucket = DefaultStampBucket
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultRequestTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	return &StampVerifier{cfg: cfg, spent: map[[sha256.Size]byte]time.Time{}}
}

// MinBits returns the difficulty the verifier demands (what a therapist
// publishes so patients know what to mint).
func (v *StampVerifier) MinBits() uint8 { return v.cfg.MinBits }

// Verify accepts the stamp of a request for slot created at created,
// arriving at now, and marks it spent. It refuses (ErrStamp) a stamp of
// fewer bits than the verifier demands; one whose work does not reach its
// claimed bits, which is also what a stamp made for another slot or request
// looks like; one whose bucket is not that of the request's creation time
// (give or take one bucket of clock skew); one of a request created more than
// a bucket in the future or more than MaxAge ago (stale); and (ErrReplay) a
// stamp spent before.
func (v *StampVerifier) Verify(s Stamp, slot SlotRef, req RequestID, created, now time.Time) error {
	v.prune(now)
	if s.Bits < v.cfg.MinBits {
		return fmt.Errorf("stamp of %d bits, want %d: %w", s.Bits, v.cfg.MinBits, ErrStamp)
	}
	if created.Sub(now) > v.cfg.Bucket || now.Sub(created) > v.cfg.MaxAge {
		return fmt.Errorf("stamp of a request created %v, now %v: stale: %w", created.UTC(), now.UTC(), ErrStamp)
	}
	want := stampBucket(created, v.cfg.Bucket)
	if s.Bucket+1 < want || s.Bucket > want+1 {
		return fmt.Errorf("stamp for bucket %d, request made in %d: %w", s.Bucket, want, ErrStamp)
	}
	h := stampHash(slot, req, s)
	if leadingZeroBits(h) < int(s.Bits) {
		return fmt.Errorf("stamp does not reach its %d bits for slot %v: %w", s.Bits, slot, ErrStamp)
	}
	if _, ok := v.spent[h]; ok {
		return fmt.Errorf("stamp for slot %v: %w", slot, ErrReplay)
	}
	if len(v.order) >= v.cfg.MaxEntries {
		delete(v.spent, v.order[0])
		v.order = v.order[1:]
	}
	v.spent[h] = created.Add(v.cfg.MaxAge + v.cfg.Bucket)
	v.order = append(v.order, h)
	return nil
}

// prune forgets the oldest stamps that can no longer be accepted at now.
func (v *StampVerifier) prune(now time.Time) {
	i := 0
	for ; i < len(v.order); i++ {
		h := v.order[i]
		if until, ok := v.spent[h]; ok && now.Before(until) {
			break
		}
		delete(v.spent, h)
	}
	v.order = v.order[i:]
}

// Len returns the number of spent stamps remembered.
func (v *StampVerifier) Len() int { return len(v.spent) }
