package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fragT0 is an arbitrary fixed instant; tests never read the wall clock.
var fragT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fragObject returns n deterministic pseudo-random bytes.
func fragObject(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x17))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fragFrame encodes a fragment without validating it.
func fragFrame(group uint32, index, count uint8, data []byte) []byte {
	return Fragment{Group: group, Index: index, Count: count, Data: data}.AppendTo(nil)
}

// fragCheck verifies the reassembler's bounds and internal consistency.
func fragCheck(t testing.TB, r *Reassembler) {
	t.Helper()
	st := r.Stats()
	if st.Bytes > r.cfg.MaxBytes {
		t.Fatalf("buffered %d bytes, budget %d", st.Bytes, r.cfg.MaxBytes)
	}
	if st.Groups > r.cfg.MaxGroups {
		t.Fatalf("%d groups, max %d", st.Groups, r.cfg.MaxGroups)
	}
	if st.Groups != len(r.groups) || len(r.groups) != len(r.heap) {
		t.Fatalf("stats say %d groups, map has %d, heap %d", st.Groups, len(r.groups), len(r.heap))
	}
	total := 0
	for i, g := range r.heap {
		if g.pos != i {
			t.Fatalf("heap[%d].pos = %d", i, g.pos)
		}
		if r.groups[g.key] != g {
			t.Fatalf("heap[%d] (%v) is not in the map", i, g.key)
		}
		if i > 0 && fragOlder(g, r.heap[(i-1)/2]) {
			t.Fatalf("heap order broken at %d", i)
		}
		have, n := 0, 0
		for _, p := range g.parts {
			if p != nil {
				have++
				n += len(p)
			}
		}
		if have != g.have || n != g.bytes || len(g.parts) != int(g.count) {
			t.Fatalf("group %v: have %d/%d bytes %d/%d parts %d count %d",
				g.key, have, g.have, n, g.bytes, len(g.parts), g.count)
		}
		if g.bytes > r.cfg.MaxObjectSize {
			t.Fatalf("group %v holds %d bytes, max object %d", g.key, g.bytes, r.cfg.MaxObjectSize)
		}
		total += g.bytes
	}
	if total != st.Bytes {
		t.Fatalf("groups hold %d bytes, stats say %d", total, st.Bytes)
	}
}

func TestFragmentSplitRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		size, mtu int
	}{
		{"one byte", 1, FragmentHeaderSize + 1},
		{"one fragment exactly", 248, 255},
		{"one fragment short", 100, 255},
		{"two fragments", 249, 255},
		{"exact multiple", 4 * 248, 255},
		{"exact multiple tiny mtu", 10, FragmentHeaderSize + 1},
		{"ethernet-sized object in 200-byte frames", 1500, 200},
		{"max fragments at LoRa mtu", MaxFragments * 248, 255},
		{"max fragments minus one byte", MaxFragments*248 - 1, 255},
		{"max fragments tiny mtu", MaxFragments, FragmentHeaderSize + 1},
		{"huge mtu", 5000, math.MaxInt},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := fragObject(uint64(i), tt.size)
			group := uint32(0xdeadbeef) + uint32(i)
			frames, err := Split(obj, tt.mtu, group)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			per := min(tt.mtu-FragmentHeaderSize, tt.size)
			wantN := (tt.size + per - 1) / per
			if len(frames) != wantN {
				t.Fatalf("got %d frames, want %d", len(frames), wantN)
			}
			for j, fr := range frames {
				if j < len(frames)-1 && len(fr) != per+FragmentHeaderSize {
					t.Errorf("frame %d is %d bytes, want %d", j, len(fr), per+FragmentHeaderSize)
				}
				if len(fr) > tt.mtu || cap(fr) != len(fr) {
					t.Errorf("frame %d: len %d cap %d mtu %d", j, len(fr), cap(fr), tt.mtu)
				}
				f, err := ParseFragment(fr)
				if err != nil {
					t.Fatalf("frame %d: %v", j, err)
				}
				if f.Group != group || int(f.Index) != j || int(f.Count) != len(frames) {
					t.Fatalf("frame %d: %+v", j, f)
				}
			}

			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for round := range 4 {
				order := rng.Perm(len(frames))
				if round == 0 {
					order = slices.Sorted(slices.Values(order))
				}
				r := NewReassembler(ReassemblerConfig{})
				now := fragT0
				for k, j := range order {
					now = now.Add(time.Millisecond)
					got, err := r.Add(now, "peer", frames[j])
					if err != nil {
						t.Fatalf("round %d: Add frame %d: %v", round, j, err)
					}
					fragCheck(t, r)
					if last := k == len(order)-1; last != (got != nil) {
						t.Fatalf("round %d: step %d of %d returned %d bytes", round, k, len(order), len(got))
					}
					if got != nil && !bytes.Equal(got, obj) {
						t.Fatalf("round %d: reassembled object differs", round)
					}
				}
				if st := r.Stats(); st.Completed != 1 || st.Groups != 0 || st.Bytes != 0 {
					t.Fatalf("round %d: stats %+v", round, st)
				}
			}
		})
	}
}

func TestFragmentSplitErrors(t *testing.T) {
	tests := []struct {
		name string
		size int
		mtu  int
		want error
	}{
		{"empty object", 0, 255, ErrMalformed},
		{"mtu is header size", 10, FragmentHeaderSize, ErrMalformed},
		{"mtu zero", 10, 0, ErrMalformed},
		{"mtu negative", 10, -1, ErrMalformed},
		{"256 fragments at LoRa mtu", MaxFragments*248 + 1, 255, ErrTooLarge},
		{"256 fragments tiny mtu", MaxFragments + 1, FragmentHeaderSize + 1, ErrTooLarge},
		{"far too many", 1 << 20, 64, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := Split(make([]byte, tt.size), tt.mtu, 1)
			if !errors.Is(err, tt.want) || frames != nil {
				t.Fatalf("Split = %d frames, %v; want %v", len(frames), err, tt.want)
			}
		})
	}
}

// fragParseCases seed FuzzParseFragment as well.
var fragParseCases = []struct {
	name  string
	frame []byte
	want  error // nil: valid
}{
	{"minimal", []byte{0x17, 0, 0, 0, 1, 0, 1, 0xaa}, nil},
	{"last of 255", []byte{0x17, 0xff, 0xff, 0xff, 0xff, 254, 255, 1, 2, 3}, nil},
	{"middle", append([]byte{0x17, 1, 2, 3, 4, 3, 9}, make([]byte, 248)...), nil},
	{"empty", nil, ErrTruncated},
	{"kind only", []byte{0x17}, ErrTruncated},
	{"short group", []byte{0x17, 0, 0, 0}, ErrTruncated},
	{"no index", []byte{0x17, 0, 0, 0, 1}, ErrTruncated},
	{"no count", []byte{0x17, 0, 0, 0, 1, 0}, ErrTruncated},
	{"no data", []byte{0x17, 0, 0, 0, 1, 0, 1}, ErrTruncated},
	{"wrong kind", []byte{0x10, 0, 0, 0, 1, 0, 1, 0xaa}, ErrUnknownKind},
	{"unknown kind", []byte{0xff, 0, 0, 0, 1, 0, 1, 0xaa}, ErrUnknownKind},
	{"index equals count", []byte{0x17, 0, 0, 0, 1, 2, 2, 0xaa}, ErrMalformed},
	{"index above count", []byte{0x17, 0, 0, 0, 1, 255, 3, 0xaa}, ErrMalformed},
	{"count zero", []byte{0x17, 0, 0, 0, 1, 0, 0, 0xaa}, ErrMalformed},
}

func TestFragmentParse(t *testing.T) {
	for _, tt := range fragParseCases {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFragment(tt.frame)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("ParseFragment = %+v, %v; want %v", f, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseFragment: %v", err)
			}
			if got := f.AppendTo(nil); !bytes.Equal(got, tt.frame) {
				t.Fatalf("AppendTo = %x, want %x", got, tt.frame)
			}
			if prefix := []byte("xyz"); !bytes.Equal(f.AppendTo(prefix)[:3], prefix) {
				t.Fatal("AppendTo lost the prefix")
			}
		})
	}
}

func FuzzParseFragment(f *testing.F) {
	for _, tt := range fragParseCases {
		f.Add(tt.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frag, err := ParseFragment(b)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnknownKind) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if frag.Count == 0 || frag.Index >= frag.Count || len(frag.Data) == 0 {
			t.Fatalf("accepted invalid fragment %+v", frag)
		}
		enc := frag.AppendTo(nil)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		again, err := ParseFragment(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if again.Group != frag.Group || again.Index != frag.Index || again.Count != frag.Count ||
			!bytes.Equal(again.Data, frag.Data) {
			t.Fatalf("re-parse = %+v, want %+v", again, frag)
		}
	})
}

// fragStep is one Add in a scripted scenario.
type fragStep struct {
	at      time.Duration // since fragT0
	source  string
	frame   []byte
	want    []byte // object expected back, nil for none
	wantErr error
}

func fragRun(t *testing.T, r *Reassembler, steps []fragStep) {
	t.Helper()
	for i, s := range steps {
		got, err := r.Add(fragT0.Add(s.at), s.source, s.frame)
		if s.wantErr != nil {
			if !errors.Is(err, s.wantErr) || got != nil {
				t.Fatalf("step %d: Add = %d bytes, %v; want %v", i, len(got), err, s.wantErr)
			}
		} else if err != nil {
			t.Fatalf("step %d: Add: %v", i, err)
		}
		if !bytes.Equal(got, s.want) || (got == nil) != (s.want == nil) {
			t.Fatalf("step %d: Add = %x, want %x", i, got, s.want)
		}
		fragCheck(t, r)
	}
}

func TestFragmentReassemblerRejects(t *testing.T) {
	a := []byte("aaaa")
	b := []byte("bbbb")
	c := []byte("cc")
	obj := []byte("aaaabbbbcc")
	tests := []struct {
		name  string
		cfg   ReassemblerConfig
		steps []fragStep
		want  ReassemblerStats
	}{
		{
			name: "identical duplicates ignored",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 2, 3, c)},
				{source: "p", frame: fragFrame(7, 2, 3, c)},
				{source: "p", frame: fragFrame(7, 1, 3, b), want: obj},
			},
			want: ReassemblerStats{Completed: 1, Duplicates: 2},
		},
		{
			name: "conflicting duplicate drops the group",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 2, 3, c)},
				{source: "p", frame: fragFrame(7, 0, 3, b), wantErr: ErrMalformed},
				// The group is gone: the rest starts a new group that cannot complete.
				{source: "p", frame: fragFrame(7, 1, 3, b)},
			},
			want: ReassemblerStats{Malformed: 1, Groups: 1, Bytes: 4},
		},
		{
			name: "count mismatch drops the group",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 1, 4, b), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 1},
		},
		{
			name: "count mismatch with one-fragment object",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 0, 1, a), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 1},
		},
		{
			name: "non-last fragments of different sizes",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, a)},
				{source: "p", frame: fragFrame(7, 1, 3, c), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 1},
		},
		{
			name: "last fragment longer than the others",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 3, c)},
				{source: "p", frame: fragFrame(7, 2, 3, a), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 1},
		},
		{
			name: "non-last fragment shorter than the last",
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 2, 3, a)},
				{source: "p", frame: fragFrame(7, 1, 3, c), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 1},
		},
		{
			name: "undecodable frames",
			steps: []fragStep{
				{source: "p", frame: nil, wantErr: ErrTruncated},
				{source: "p", frame: []byte{0x17, 0, 0, 0, 7, 0, 3}, wantErr: ErrTruncated},
				{source: "p", frame: []byte{0x10, 0, 0, 0, 7, 0, 3, 1}, wantErr: ErrUnknownKind},
				{source: "p", frame: fragFrame(7, 3, 3, a), wantErr: ErrMalformed},
				{source: "p", frame: fragFrame(7, 0, 0, a), wantErr: ErrMalformed},
			},
			want: ReassemblerStats{Malformed: 5},
		},
		{
			name: "too large from a middle fragment",
			cfg:  ReassemblerConfig{MaxObjectSize: 1000},
			steps: []fragStep{
				// At least 254*10+1 bytes.
				{source: "p", frame: fragFrame(7, 0, 255, make([]byte, 10)), wantErr: ErrTooLarge},
				// 100*10 is fine, 100*10+1 is not.
				{source: "p", frame: fragFrame(8, 0, 100, make([]byte, 10))},
				{source: "p", frame: fragFrame(9, 0, 101, make([]byte, 10)), wantErr: ErrTooLarge},
			},
			want: ReassemblerStats{TooLarge: 2, Groups: 1, Bytes: 10},
		},
		{
			name: "too large from the last fragment",
			cfg:  ReassemblerConfig{MaxObjectSize: 1000},
			steps: []fragStep{
				// The others are at least as long as the last: 101*10.
				{source: "p", frame: fragFrame(7, 100, 101, make([]byte, 10)), wantErr: ErrTooLarge},
			},
			want: ReassemblerStats{TooLarge: 1},
		},
		{
			name: "too large once the shape is known drops the group",
			cfg:  ReassemblerConfig{MaxObjectSize: 1000},
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 99, 100, make([]byte, 5))},                       // >= 500
				{source: "p", frame: fragFrame(7, 0, 100, make([]byte, 11)), wantErr: ErrTooLarge}, // 99*11+5
			},
			want: ReassemblerStats{TooLarge: 1},
		},
		{
			name: "one-fragment object too large",
			cfg:  ReassemblerConfig{MaxObjectSize: 3},
			steps: []fragStep{
				{source: "p", frame: fragFrame(7, 0, 1, a), wantErr: ErrTooLarge},
				{source: "p", frame: fragFrame(7, 0, 1, c), want: c},
			},
			want: ReassemblerStats{TooLarge: 1, Completed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(tt.cfg)
			fragRun(t, r, tt.steps)
			if got := r.Stats(); got != tt.want {
				t.Fatalf("stats = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestFragmentReassemblerConfigDefaults(t *testing.T) {
	got := NewReassembler(ReassemblerConfig{MaxGroups: -1}).Config()
	want := ReassemblerConfig{
		MaxGroups:     64,
		MaxBytes:      256 << 10,
		MaxObjectSize: 70_000,
		Timeout:       2 * time.Minute,
	}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	if got := NewReassembler(ReassemblerConfig{MaxBytes: 1000}).Config().MaxObjectSize; got != 1000 {
		t.Fatalf("MaxObjectSize = %d, want it lowered to MaxBytes", got)
	}
}

func TestFragmentReassemblerEviction(t *testing.T) {
	t.Run("oldest group makes room for a new one", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxGroups: 3})
		data := []byte("xy")
		for g := range uint32(3) {
			fragRun(t, r, []fragStep{{at: time.Duration(g) * time.Second, source: "p", frame: fragFrame(g, 0, 2, data)}})
		}
		// Group 0 is the oldest even though group 1 gets newer data.
		fragRun(t, r, []fragStep{
			{at: 3 * time.Second, source: "q", frame: fragFrame(9, 0, 2, data)},
			{at: 4 * time.Second, source: "p", frame: fragFrame(1, 1, 2, data), want: []byte("xyxy")},
			{at: 5 * time.Second, source: "p", frame: fragFrame(2, 1, 2, data), want: []byte("xyxy")},
			// Group 0 lost its first fragment: its second starts a new group.
			{at: 6 * time.Second, source: "p", frame: fragFrame(0, 1, 2, data)},
		})
		if st := r.Stats(); st.Evicted != 1 || st.Completed != 2 || st.Groups != 2 {
			t.Fatalf("stats %+v", st)
		}
		if _, ok := r.groups[fragKey{"q", 9}]; !ok {
			t.Fatal("the newest group was evicted")
		}
	})

	t.Run("ties broken by arrival order", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxGroups: 2})
		fragRun(t, r, []fragStep{
			{source: "b", frame: fragFrame(1, 0, 2, []byte("1"))},
			{source: "a", frame: fragFrame(1, 0, 2, []byte("2"))},
			{source: "c", frame: fragFrame(1, 0, 2, []byte("3"))},
		})
		if _, ok := r.groups[fragKey{"b", 1}]; ok {
			t.Fatal("the first arrival survived")
		}
	})

	t.Run("byte budget", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxBytes: 100, MaxObjectSize: 60})
		d := make([]byte, 30)
		fragRun(t, r, []fragStep{
			{at: 0, source: "p", frame: fragFrame(1, 0, 2, d)},
			{at: 1, source: "p", frame: fragFrame(2, 0, 2, d)},
			{at: 2, source: "p", frame: fragFrame(3, 0, 2, d)},
			// 120 bytes would be buffered: group 1 goes.
			{at: 3, source: "p", frame: fragFrame(4, 0, 2, d)},
			{at: 4, source: "p", frame: fragFrame(2, 1, 2, d[:1]), want: make([]byte, 31)},
			// Growing the oldest group evicts a younger one, never the group itself.
			{at: 5, source: "p", frame: fragFrame(5, 0, 2, d[:20])},
			{at: 6, source: "p", frame: fragFrame(3, 1, 2, d), want: make([]byte, 60)},
		})
		if st := r.Stats(); st.Evicted != 2 || st.Completed != 2 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("fragment over the budget", func(t *testing.T) {
		r := NewReassembler(ReassemblerConfig{MaxBytes: 10})
		fragRun(t, r, []fragStep{
			{source: "p", frame: fragFrame(1, 0, 2, make([]byte, 5))},
			{source: "p", frame: fragFrame(1, 1, 2, make([]byte, 11)), wantErr: ErrLimit},
			{source: "p", frame: fragFrame(2, 0, 1, make([]byte, 11)), wantErr: ErrLimit},
			{source: "p", frame: fragFrame(1, 1, 2, make([]byte, 5)), want: make([]byte, 10)},
		})
		if st := r.Stats(); st.Refused != 2 || st.Completed != 1 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("many concurrent groups", func(t *testing.T) {
		cfg := ReassemblerConfig{MaxGroups: 16, MaxBytes: 4000, MaxObjectSize: 2000}
		r := NewReassembler(cfg)
		rng := rand.New(rand.NewPCG(42, 42))
		type pending struct {
			source string
			frames [][]byte
		}
		var queue []pending
		for i := range 200 {
			obj := fragObject(uint64(i), 1+rng.IntN(2000))
			frames, err := Split(obj, 60+rng.IntN(200), rng.Uint32())
			if err != nil {
				t.Fatal(err)
			}
			queue = append(queue, pending{fmt.Sprint("peer", i%7), frames})
		}
		now := fragT0
		for len(queue) > 0 {
			i := rng.IntN(min(len(queue), 40))
			p := &queue[i]
			now = now.Add(time.Millisecond)
			if _, err := r.Add(now, p.source, p.frames[0]); err != nil {
				t.Fatal(err)
			}
			fragCheck(t, r)
			if p.frames = p.frames[1:]; len(p.frames) == 0 {
				queue = slices.Delete(queue, i, i+1)
			}
		}
		st := r.Stats()
		if st.Evicted == 0 || st.Completed == 0 {
			t.Fatalf("scenario did not exercise eviction: %+v", st)
		}
		t.Logf("%+v", st)
	})
}

func TestFragmentReassemblerExpiry(t *testing.T) {
	r := NewReassembler(ReassemblerConfig{Timeout: time.Minute})
	if _, ok := r.NextExpiry(); ok {
		t.Fatal("NextExpiry on an empty reassembler")
	}
	fragRun(t, r, []fragStep{
		{at: 0, source: "p", frame: fragFrame(1, 0, 2, []byte("a"))},
		{at: 10 * time.Second, source: "p", frame: fragFrame(2, 0, 2, []byte("b"))},
		// More data for group 1 does not extend its life.
		{at: 20 * time.Second, source: "q", frame: fragFrame(1, 0, 2, []byte("c"))},
	})
	wantNext := func(want time.Duration) {
		t.Helper()
		next, ok := r.NextExpiry()
		if !ok || !next.Equal(fragT0.Add(want)) {
			t.Fatalf("NextExpiry = %v, %v; want T0+%v", next, ok, want)
		}
	}
	wantNext(time.Minute)
	if n := r.Expire(fragT0.Add(time.Minute - 1)); n != 0 {
		t.Fatalf("Expire before the deadline dropped %d", n)
	}
	if n := r.Expire(fragT0.Add(time.Minute)); n != 1 {
		t.Fatalf("Expire at the deadline dropped %d, want 1", n)
	}
	wantNext(70 * time.Second)
	// Expiry is lazy on Add too: group 2 is gone before its last fragment
	// arrives, which then starts a new group.
	fragRun(t, r, []fragStep{
		{at: 70 * time.Second, source: "p", frame: fragFrame(2, 1, 2, []byte("b"))},
	})
	wantNext(80 * time.Second)
	if n := r.Expire(fragT0.Add(time.Hour)); n != 2 {
		t.Fatalf("Expire dropped %d, want 2", n)
	}
	if _, ok := r.NextExpiry(); ok {
		t.Fatal("NextExpiry with no groups")
	}
	if st := r.Stats(); st.Expired != 4 || st.Groups != 0 || st.Bytes != 0 || st.Completed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFragmentReassemblerSources(t *testing.T) {
	objA := fragObject(1, 700)
	objB := fragObject(2, 700)
	fa, _ := Split(objA, 255, 5)
	fb, _ := Split(objB, 255, 5) // same group ID, same count
	r := NewReassembler(ReassemblerConfig{})
	var got [][]byte
	for i := range fa {
		for _, s := range []struct {
			src   string
			frame []byte
		}{{"a", fa[i]}, {"b", fb[i]}} {
			obj, err := r.Add(fragT0, s.src, s.frame)
			if err != nil {
				t.Fatalf("%s fragment %d: %v", s.src, i, err)
			}
			if obj != nil {
				got = append(got, obj)
			}
		}
	}
	if len(got) != 2 || !bytes.Equal(got[0], objA) || !bytes.Equal(got[1], objB) {
		t.Fatalf("got %d objects, want objA then objB", len(got))
	}

	// A fragment of a's group that arrives from b does not complete a's.
	r = NewReassembler(ReassemblerConfig{})
	fragRun(t, r, []fragStep{
		{source: "a", frame: fa[0]},
		{source: "a", frame: fa[1]},
		{source: "b", frame: fa[2]},
	})
	if st := r.Stats(); st.Groups != 2 || st.Completed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFragmentReassemblerInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	type sent struct {
		source string
		obj    []byte
	}
	type frame struct {
		id    int
		frame []byte
	}
	var objs []sent
	var frames []frame
	for i := range 50 {
		obj := fragObject(uint64(100+i), 1+rng.IntN(5000))
		fr, err := Split(obj, 30+rng.IntN(300), uint32(rng.IntN(4))) // many shared group IDs
		if err != nil {
			t.Fatal(err)
		}
		src := fmt.Sprint("peer", i)
		objs = append(objs, sent{src, obj})
		for _, f := range fr {
			frames = append(frames, frame{i, f})
		}
	}
	rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	r := NewReassembler(ReassemblerConfig{MaxBytes: 1 << 20})
	done := map[int]bool{}
	for _, f := range frames {
		got, err := r.Add(fragT0, objs[f.id].source, f.frame)
		if err != nil {
			t.Fatal(err)
		}
		fragCheck(t, r)
		if got != nil {
			if done[f.id] || !bytes.Equal(got, objs[f.id].obj) {
				t.Fatalf("object %d: wrong or repeated", f.id)
			}
			done[f.id] = true
		}
	}
	if st := r.Stats(); len(done) != len(objs) || st.Completed != uint64(len(objs)) || st.Groups != 0 || st.Bytes != 0 {
		t.Fatalf("completed %d of %d, stats %+v", len(done), len(objs), st)
	}
}

// fragFuzzConfig is small so that fuzz inputs reach every limit.
var fragFuzzConfig = ReassemblerConfig{MaxGroups: 3, MaxBytes: 128, MaxObjectSize: 96, Timeout: 30 * time.Second}

// fragDrive interprets in as a sequence of Adds and calls step after each.
// Each record starts with an op byte: bits 0-1 pick one of four sources,
// bits 2-4 advance the clock in 7-second steps, and bit 7 selects a raw frame
// (a length byte and that many bytes) instead of a structured fragment
// (group, count, index and length bytes, with small ranges so fragments of
// the same group meet; a length byte with bit 7 set gives equal-fill shapes).
func fragDrive(in []byte, step func(now time.Time, source string, frame []byte)) {
	next := func() byte {
		if len(in) == 0 {
			return 0
		}
		b := in[0]
		in = in[1:]
		return b
	}
	now := fragT0
	for len(in) > 0 {
		op := next()
		source := string(rune('a' + op&3))
		now = now.Add(time.Duration(op>>2&7) * 7 * time.Second)
		var frame []byte
		if op&0x80 != 0 {
			n := int(next())
			n = min(n, len(in))
			frame, in = in[:n], in[n:]
		} else {
			group := uint32(next() & 3)
			count := next() % 6
			index := next() % 7
			l := next()
			n := int(l % 64)
			if l&0x80 != 0 {
				n = 16
				if index == count-1 {
					n = 1 + int(l%16)
				}
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(group)<<4 | index
			}
			frame = fragFrame(group, index, count, data)
		}
		step(now, source, frame)
	}
}

// fragFuzzRecord encodes a structured record for fragDrive.
func fragFuzzRecord(source, tick, group, count, index, lenByte byte) []byte {
	return []byte{source&3 | (tick&7)<<2, group, count, index, lenByte}
}

func FuzzReassembler(f *testing.F) {
	var seed []byte
	for i := range byte(4) { // a complete 4-fragment object
		seed = append(seed, fragFuzzRecord(0, 0, 1, 4, i, 0x80|5)...)
	}
	f.Add(seed)
	seed = nil
	for i := range byte(5) { // interleaved groups from several sources, with time passing
		for s := range byte(4) {
			seed = append(seed, fragFuzzRecord(s, s, i%4, 5, i, 0x80)...)
		}
	}
	f.Add(seed)
	f.Add(append(fragFuzzRecord(1, 0, 2, 3, 0, 10), fragFuzzRecord(1, 0, 2, 3, 0, 11)...))
	for _, tt := range fragParseCases {
		f.Add(append([]byte{0x80, byte(len(tt.frame))}, tt.frame...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReassembler(fragFuzzConfig)
		fragDrive(in, func(now time.Time, source string, frame []byte) {
			obj, err := r.Add(now, source, frame)
			if obj != nil && err != nil {
				t.Fatalf("Add returned an object and %v", err)
			}
			if len(obj) > fragFuzzConfig.MaxObjectSize {
				t.Fatalf("Add returned %d bytes, max %d", len(obj), fragFuzzConfig.MaxObjectSize)
			}
			if obj != nil && len(obj) == 0 {
				t.Fatal("Add returned an empty object")
			}
			fragCheck(t, r)
			if next, ok := r.NextExpiry(); ok && !next.After(now) {
				t.Fatalf("NextExpiry %v not after now %v right after Add", next, now)
			}
		})
	})
}

// TestFragmentReassemblerDeterministic replays the same inputs twice and
// expects the same transcript, as the simulator does.
func TestFragmentReassemblerDeterministic(t *testing.T) {
	in := make([]byte, 20000)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range in {
		in[i] = byte(rng.Uint32())
	}
	run := func() string {
		var out bytes.Buffer
		r := NewReassembler(fragFuzzConfig)
		fragDrive(in, func(now time.Time, source string, frame []byte) {
			obj, err := r.Add(now, source, frame)
			fmt.Fprintf(&out, "%x %v %+v\n", obj, err, r.Stats())
		})
		return out.String()
	}
	if a, b := run(), run(); a != b {
		t.Fatal("two runs over the same inputs differ")
	}
}

func BenchmarkSplit(b *testing.B) {
	obj := fragObject(1, 1500)
	b.ReportAllocs()
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		if _, err := Split(obj, 200, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReassemble(b *testing.B) {
	obj := fragObject(1, 1500)
	frames, err := Split(obj, 200, 1)
	if err != nil {
		b.Fatal(err)
	}
	r := NewReassembler(ReassemblerConfig{})
	b.ReportAllocs()
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		var got []byte
		for _, f := range frames {
			if got, err = r.Add(fragT0, "peer", f); err != nil {
				b.Fatal(err)
			}
		}
		if len(got) != len(obj) {
			b.Fatal("not reassembled")
		}
	}
}
