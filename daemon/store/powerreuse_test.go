package store

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"meshd.dev/meshd/routing"
)

// The apply-reuse child writes reuseBatch: crashBatch with one engine
// record, reuseKey, set by every sixth batch and deleted three batches
// later, in a store of small log segments (a checkpoint every 40 batches or so),
// and reads (and checks) the store after some batches, so that the
// applier's groups end at varying places: a delete of reuseKey applied alone (in badger,
// not synced), then a set and a delete of it merged into a delete the
// applier leaves out (badger's Get says the key is absent). A power cut
// takes badger back to its last sync, where it may hold the key again.
const (
	reusePrefix = "r/"
	reuseKey    = reusePrefix + "reuse"
	reuseMark   = reusePrefix + "mode" // set by batch 0: the report checks reuseKey
)

func reuseBatch(b int) *routing.Ready {
	rd := crashBatch(b)
	if b == 0 {
		rd.Persist = append(rd.Persist, routing.Record{Key: reuseMark, Value: []byte("reuse")})
	}
	switch b % 6 {
	case 0:
		rd.Persist = append(rd.Persist, routing.Record{Key: reuseKey, Value: []byte(strconv.Itoa(b))})
	case 3:
		rd.Deletes = append(rd.Deletes, reuseKey)
	}
	return rd
}

// reuseWant returns the value of reuseKey after batches 0..top-1 and
// whether it exists.
func reuseWant(top int) (string, bool) {
	last := top - 1
	last -= last % 3
	if last < 0 || last%6 == 3 {
		return "", false
	}
	return strconv.Itoa(last), true
}

// checkReuse checks reuseKey in a store that holds top whole batches: if
// the apply-reuse child wrote them, it is as the last batch that touched
// it left it (reuseWant); otherwise no key under reusePrefix exists.
func checkReuse(s *Store, top int) error {
	recs, err := s.EngineRecords()
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, r := range recs {
		if strings.HasPrefix(r.Key, reusePrefix) {
			got[r.Key] = string(r.Value)
		}
	}
	if got[reuseMark] == "" {
		if len(got) > 0 {
			return fmt.Errorf("reuse records %v without the mark", got)
		}
		return nil
	}
	if top == 0 {
		return fmt.Errorf("reuse records %v with no batch", got)
	}
	v, ok := got[reuseKey]
	if want, wok := reuseWant(top); v != want || ok != wok {
		return fmt.Errorf("after %d batches %s = %q (present %v), want %q (present %v)", top, reuseKey, v, ok, want, wok)
	}
	return nil
}

func runReuse(dir string) int {
	walSegSize = walMinSeg // a new store's: a segment switch, and a checkpoint, every 40 batches or so
	s, err := Open(dir, quiet)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	next, ok := childReady(s)
	if !ok {
		return 1
	}
	for b := next; ; b++ {
		seqs, err := s.Apply(reuseBatch(b))
		if err != nil {
			fmt.Println("apply:", err)
			return 1
		}
		fmt.Printf("ack %d %d\n", b, seqs[0])
		if b%13 == 3 || b%11 == 7 {
			// A reader: the applier applies what is queued, and the
			// store must read as the batches left it.
			if err := checkReuse(s, b+1); err != nil {
				fmt.Println("live:", err)
				return 1
			}
		}
	}
}

// TestPowerLossReuse: power cuts while a record is set, deleted, set and
// deleted again across the applier's groups (apply-reuse): every
// acknowledged batch survives and the record has the value of the last
// batch on disk (not an older one a delete the applier left out would
// fail to cover).
func TestPowerLossReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cuts := make([]int, 12)
	for i := range cuts {
		cuts[i] = 1 + rng.IntN(60)
	}
	total := powerRounds(t, "apply-reuse", cuts)
	t.Logf("%d acknowledged batches checked", total)
}
