package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Known peers: the libp2p peers this node had a meshd link with and their
// last addresses, so that after a restart it dials them again (the mesh
// heals without mDNS and without meshctl connect). Each is one key
// "p/<peer ID>" holding JSON {"seen": unix seconds, "addrs": [multiaddr]}.
const peerPrefix = "p/"

// Bounds of the known peers: MaxKnownPeers entries (a full store forgets
// the peer seen longest ago), MaxPeerAddrs addresses of at most
// maxPeerAddrLen bytes each.
const (
	MaxKnownPeers  = 64
	MaxPeerAddrs   = 8
	maxPeerAddrLen = 256
	maxPeerIDLen   = 128
)

// KnownPeer is one remembered peer.
type KnownPeer struct {
	ID    string    // libp2p peer ID (text form)
	Addrs []string  // multiaddrs without /p2p/
	Seen  time.Time // when a link with it was last up
}

type knownPeerValue struct {
	Seen  int64    `json:"seen"`
	Addrs []string `json:"addrs"`
}

// PutKnownPeers stores (or refreshes) peers, then forgets the oldest
// beyond MaxKnownPeers, except the peers of keep (those with a link up
// now: seen longest ago only because their link has lasted, they must not
// give way to a flood of new identities). Over-long IDs and addresses are
// left out.
func (s *Store) PutKnownPeers(peers []KnownPeer, keep ...string) error {
	return s.update(func(txn guardTxn) error {
		for _, p := range peers {
			if p.ID == "" || len(p.ID) > maxPeerIDLen {
				continue
			}
			addrs := slices.DeleteFunc(slices.Clone(p.Addrs), func(a string) bool { return a == "" || len(a) > maxPeerAddrLen })
			if len(addrs) > MaxPeerAddrs {
				addrs = addrs[:MaxPeerAddrs]
			}
			v, err := json.Marshal(knownPeerValue{Seen: p.Seen.Unix(), Addrs: addrs})
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(peerPrefix+p.ID), v); err != nil {
				return err
			}
		}
		all, err := knownPeers(txn.Txn)
		if err != nil {
			return err
		}
		for i := len(all) - 1; i >= 0 && len(all) > MaxKnownPeers; i-- {
			if slices.Contains(keep, all[i].ID) {
				continue
			}
			if err := txn.Delete([]byte(peerPrefix + all[i].ID)); err != nil {
				return err
			}
			all = slices.Delete(all, i, i+1)
		}
		return nil
	})
}

// KnownPeers returns the remembered peers, most recently seen first.
// Damaged entries are skipped.
func (s *Store) KnownPeers() ([]KnownPeer, error) {
	var out []KnownPeer
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = knownPeers(txn)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: known peers: %w", err)
	}
	return out, nil
}

func knownPeers(txn *badger.Txn) ([]KnownPeer, error) {
	var out []KnownPeer
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(peerPrefix), PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		var kv knownPeerValue
		if json.Unmarshal(v, &kv) != nil || len(kv.Addrs) > MaxPeerAddrs {
			continue
		}
		out = append(out, KnownPeer{ID: string(it.Item().Key()[len(peerPrefix):]), Addrs: kv.Addrs, Seen: time.Unix(kv.Seen, 0)})
	}
	slices.SortStableFunc(out, func(a, b KnownPeer) int { return b.Seen.Compare(a.Seen) })
	return out, nil
}

// ForgetKnownPeers deletes the peers last seen before cutoff, except those
// of keep (bootstrap peers, peers with a link up), and reports how many.
func (s *Store) ForgetKnownPeers(cutoff time.Time, keep ...string) (int, error) {
	n := 0
	err := s.update(func(txn guardTxn) error {
		all, err := knownPeers(txn.Txn)
		if err != nil {
			return err
		}
		for _, p := range all {
			if !p.Seen.Before(cutoff) || slices.Contains(keep, p.ID) {
				continue
			}
			if err := txn.Delete([]byte(peerPrefix + p.ID)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: forget known peers: %w", err)
	}
	return n, nil
}

// TouchKnownPeers sets the last-seen time of those of ids that are
// remembered (a link that was up until now: unreachability counts from
// here, not from when the link came up).
func (s *Store) TouchKnownPeers(now time.Time, ids ...string) error {
	err := s.update(func(txn guardTxn) error {
		all, err := knownPeers(txn.Txn)
		if err != nil {
			return err
		}
		for _, p := range all {
			if !slices.Contains(ids, p.ID) {
				continue
			}
			v, err := json.Marshal(knownPeerValue{Seen: now.Unix(), Addrs: p.Addrs})
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(peerPrefix+p.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: touch known peers: %w", err)
	}
	return nil
}
