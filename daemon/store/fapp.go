package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// FAPP state of the daemon (docs/fapp.md, "Persistence"). The values are
// the pure package's own encodings (signed announces, profiles,
// revocations, reservations) or small daemon records; the store treats them
// as opaque bytes and only lays out the keys:
//
//	f/a/<therapist hex>      a signed announce of a followed region (the index)
//	f/p/<therapist hex>      a signed profile the index caches
//	f/v/<issuer hex>         the latest revocation list of a trusted issuer
//	f/g/<region>             a region an app follows (fapp.follow)
//	f/o/seq                  the own announce sequence number (4 bytes), written
//	                         before an announce under it is published
//	f/o/profile              the own signed profile
//	f/o/credential           the own credential
//	f/o/slots                the own slots and their pending changes
//	f/o/forgot               the creation time (Unix seconds, 8 bytes) of the
//	                         newest request the own book forgot for room,
//	                         written with the deletions (Book.ForgotUntil)
//	f/t/<request ID hex>     a reservation on the therapist's side
//	f/r/<request ID hex>     a reservation on the patient's side
//
// Every write is one synced transaction; FAPPWrite can also acknowledge
// inbox entries in the same transaction, so a FAPP message taken from the
// inbox is processed exactly once (the daemon writes what it caused and
// removes the entry together).

// FAPPPrefix is the common prefix of every FAPP key.
const FAPPPrefix = "f/"

// ErrFAPPKey: a FAPP key lacks the "f/" prefix.
var ErrFAPPKey = errors.New("store: not a FAPP key")

// FAPPBatch is one synced FAPP write.
type FAPPBatch struct {
	// Put maps keys (each starting with "f/") to values.
	Put map[string][]byte
	// Delete lists keys to remove (applied after Put).
	Delete []string
	// Ack lists inbox sequence numbers to remove in the same transaction.
	Ack []uint64
}

func checkFAPPKey(k string) error {
	if !strings.HasPrefix(k, FAPPPrefix) || len(k) > MaxEngineKeyLen {
		return fmt.Errorf("%w: %q", ErrFAPPKey, k)
	}
	return nil
}

// FAPPWrite applies b in one synced transaction.
func (s *Store) FAPPWrite(b FAPPBatch) error {
	for k := range b.Put {
		if err := checkFAPPKey(k); err != nil {
			return err
		}
	}
	for _, k := range b.Delete {
		if err := checkFAPPKey(k); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	// FAPP keys are written through the write-ahead log, with the inbox
	// entries the batch acknowledges: one record, all or nothing.
	acks, err := s.inboxDeletes(b.Ack)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("store: fapp write: %w", err)
	}
	keys := make([]string, 0, len(b.Put))
	for k := range b.Put {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a deterministic record
	ops := make([]op, 0, len(keys)+len(b.Delete)+len(acks))
	for _, k := range keys {
		ops = append(ops, op{key: []byte(k), value: b.Put[k]})
	}
	for _, k := range b.Delete {
		ops = append(ops, op{key: []byte(k), del: true})
	}
	ops = append(ops, acks...)
	if len(ops) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.inboxN -= len(acks)
	if err := s.logAndWait(ops); err != nil { // unlocks s.mu
		return fmt.Errorf("store: fapp write: %w", err)
	}
	return nil
}

// FAPPGet returns the value under key, or nil if there is none.
func (s *Store) FAPPGet(key string) ([]byte, error) {
	if err := checkFAPPKey(key); err != nil {
		return nil, err
	}
	var v []byte
	if err := s.waitApplied(); err != nil {
		return nil, err
	}
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			v, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: fapp get %q: %w", key, err)
	}
	return v, nil
}

// FAPPScan calls f with every key under prefix (which must start with
// "f/") and its value, in key order. The value is only valid during the
// call. An error from f stops the scan and is returned.
func (s *Store) FAPPScan(prefix string, f func(key string, value []byte) error) error {
	if err := checkFAPPKey(prefix); err != nil {
		return err
	}
	if err := s.waitApplied(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(bytes.Clone(item.Key()))
			if err := item.Value(func(v []byte) error { return f(k, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}
