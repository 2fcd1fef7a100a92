package store

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/protocol"
)

// Contacts are the operator's local names for mesh addresses (petnames).
// They never leave the node. One record per address:
//
//	n/<address hex>   the name, UTF-8 (checked by the API before it is stored)
const contactPrefix = "n/"

// MaxContactName bounds a stored name in bytes.
const MaxContactName = 64

func contactKey(a protocol.Address) []byte { return []byte(contactPrefix + a.String()) }

// PutContact stores (or renames) the contact for a, synced.
func (s *Store) PutContact(a protocol.Address, name string) error {
	if name == "" || len(name) > MaxContactName || !utf8.ValidString(name) {
		return fmt.Errorf("store: contact name %q: %w", name, ErrCorrupt)
	}
	return s.update(func(txn guardTxn) error { return txn.Set(contactKey(a), []byte(name)) })
}

// DeleteContact removes the contact for a (absent is no error), synced.
func (s *Store) DeleteContact(a protocol.Address) error {
	return s.update(func(txn guardTxn) error { return txn.Delete(contactKey(a)) })
}

// Contacts returns every contact. A damaged record is skipped and reported
// in an error wrapping ErrCorrupt, with the others.
func (s *Store) Contacts() (map[protocol.Address]string, error) {
	out := map[protocol.Address]string{}
	var errs []error
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(contactPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			a, err := protocol.ParseAddress(k[len(contactPrefix):])
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: contact key %q", ErrCorrupt, k))
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) == 0 || len(v) > MaxContactName || !utf8.Valid(v) {
				errs = append(errs, fmt.Errorf("%w: contact %s", ErrCorrupt, a))
				continue
			}
			out[a] = string(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: contacts: %w", err)
	}
	return out, errors.Join(errs...)
}
