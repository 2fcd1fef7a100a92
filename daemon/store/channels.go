package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"meshd.dev/meshd/protocol"
)

// Broadcast channels: the keys of the channels the node joined and the
// latest messages of each.
//
//	k/<channel ID hex>        a joined channel: its secret key and name
//	h/<channel ID><seq>       a channel history entry; channel ID 4 bytes,
//	                          seq 8 bytes big endian, so key order is
//	                          arrival order within a channel
//	m/channel-seq             8 bytes big endian: the next history sequence
//	                          number (shared by all channels, never reused)
//
// Channel keys are secrets: whoever reads them reads and writes the
// channel. The store never logs them; they live in the data directory,
// which is mode 0700.

// Channel key prefixes.
const (
	channelPrefix   = "k/"
	historyPrefix   = "h/"
	keyChannelSeq   = "m/channel-seq"
	channelVersion  = 1
	historyVersion  = 1
	maxChannelName  = 64
	historyHdrSize  = 1 + 1 + 8 + 8 + 1 + protocol.AddressSize + protocol.CompactIdentitySize + 4
	historyFlagSign = 1 << 0
	historyFlagSelf = 1 << 1
)

// ErrNoChannel: the channel is not joined.
var ErrNoChannel = errors.New("store: channel not joined")

// Channel is a joined broadcast channel.
type Channel struct {
	Key    protocol.ChannelKey
	Name   string
	Joined time.Time
}

// ID is the channel's public ID.
func (c *Channel) ID() protocol.ChannelID { return c.Key.ID() }

// Channel record format version 1:
//
//	| ver (1) | key (32) | joined ms (8) | name length (1) | name (UTF-8) |
func encodeChannel(c *Channel) ([]byte, error) {
	if len(c.Name) == 0 || len(c.Name) > maxChannelName || !utf8.ValidString(c.Name) {
		return nil, fmt.Errorf("store: channel name of %d bytes: want 1 to %d bytes of UTF-8", len(c.Name), maxChannelName)
	}
	b := make([]byte, 0, 1+protocol.ChannelKeySize+8+1+len(c.Name))
	b = append(b, channelVersion)
	b = append(b, c.Key[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Joined.UnixMilli()))
	b = append(b, byte(len(c.Name)))
	return append(b, c.Name...), nil
}

func decodeChannel(v []byte) (Channel, error) {
	var c Channel
	const fixed = 1 + protocol.ChannelKeySize + 8 + 1
	if len(v) < fixed || v[0] != channelVersion {
		return c, fmt.Errorf("%w: channel record of %d bytes", ErrCorrupt, len(v))
	}
	copy(c.Key[:], v[1:])
	c.Joined = time.UnixMilli(int64(binary.BigEndian.Uint64(v[1+protocol.ChannelKeySize:]))).UTC()
	n := int(v[fixed-1])
	if n == 0 || n > maxChannelName || len(v) != fixed+n || !utf8.Valid(v[fixed:]) {
		return Channel{}, fmt.Errorf("%w: channel record name", ErrCorrupt)
	}
	c.Name = string(v[fixed:])
	return c, nil
}

func channelKey(id protocol.ChannelID) []byte {
	return []byte(channelPrefix + hex.EncodeToString(id[:]))
}

func historyChanPrefix(id protocol.ChannelID) []byte {
	return append([]byte(historyPrefix), id[:]...)
}

func historyKey(id protocol.ChannelID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(historyChanPrefix(id), seq)
}

// PutChannel stores (or replaces) a joined channel, synced.
func (s *Store) PutChannel(c Channel) error {
	v, err := encodeChannel(&c)
	if err != nil {
		return err
	}
	return s.update(func(txn guardTxn) error { return txn.Set(channelKey(c.ID()), v) })
}

// Channels returns the joined channels in ID order. A damaged record is
// skipped and reported in an error wrapping ErrCorrupt, with the others.
func (s *Store) Channels() ([]Channel, error) {
	var out []Channel
	var errs []error
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(channelPrefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			c, err := decodeChannel(v)
			if err == nil && !bytes.Equal(channelKey(c.ID()), it.Item().Key()) {
				err = fmt.Errorf("%w: channel record under the wrong key", ErrCorrupt)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: channels: %w", err)
	}
	return out, errors.Join(errs...)
}

// DeleteChannel removes a channel's key (synced, first, so the secret is
// gone even if the rest fails) and then its history; history left behind
// by a crash in between is deleted at the next Open (dropOrphanHistory).
func (s *Store) DeleteChannel(id protocol.ChannelID) error {
	if err := s.update(func(txn guardTxn) error { return txn.Delete(channelKey(id)) }); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	delete(s.histN, id)
	keys, err := s.historyKeys(id, -1)
	if err != nil {
		return err
	}
	return s.deleteKeys(keys)
}

// dropOrphanHistory deletes the history of channels whose key is gone: a
// crash inside DeleteChannel (key deleted, history not yet) must not leave
// a left channel's messages on disk, nor hand them back on a rejoin.
func (s *Store) dropOrphanHistory() error {
	var orphans [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(historyPrefix)})
		defer it.Close()
		joined := map[protocol.ChannelID]bool{}
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var id protocol.ChannelID
			if len(k) < len(historyPrefix)+len(id) {
				continue
			}
			copy(id[:], k[len(historyPrefix):])
			ok, seen := joined[id]
			if !seen {
				_, err := txn.Get(channelKey(id))
				if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				ok = err == nil
				joined[id] = ok
			}
			if !ok {
				orphans = append(orphans, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: orphan history: %w", err)
	}
	return s.deleteKeys(orphans)
}

// HistoryEntry is one message of a channel's history.
type HistoryEntry struct {
	// Seq is the history sequence number (1, 2, ...; shared by all
	// channels, never reused): the cursor of channel.history.
	Seq      uint64
	Channel  protocol.ChannelID
	Received time.Time
	Hops     uint8
	// Signed reports a signed message: From and Sender are then the
	// verified sender. Local marks a message this node published.
	Signed, Local bool
	From          protocol.Address
	Sender        protocol.CompactIdentity
	Body          []byte
}

// History entry format version 1 (integers big endian):
//
//	| ver (1) | flags (1) | seq (8) | received ms (8) | hops (1) | from (16) |
//	| sender compact identity (64) | body length (4) | body |
//
// flags: bit 0 signed, bit 1 local; the others must be zero.
func encodeHistory(e *HistoryEntry) ([]byte, error) {
	if len(e.Body) > protocol.MaxChannelFrameSize {
		return nil, fmt.Errorf("store: history entry: body of %d bytes", len(e.Body))
	}
	var flags byte
	if e.Signed {
		flags |= historyFlagSign
	}
	if e.Local {
		flags |= historyFlagSelf
	}
	b := make([]byte, 0, historyHdrSize+len(e.Body))
	b = append(b, historyVersion, flags)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Received.UnixMilli()))
	b = append(b, e.Hops)
	b = append(b, e.From[:]...)
	b = append(b, e.Sender.SigningKey[:]...)
	b = append(b, e.Sender.KEMKeyHash[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Body)))
	return append(b, e.Body...), nil
}

// DecodeHistoryEntry decodes a history entry strictly (errors wrap
// ErrCorrupt). The entry does not alias v; its Channel is not set.
func DecodeHistoryEntry(v []byte) (HistoryEntry, error) {
	var e HistoryEntry
	if len(v) < historyHdrSize || v[0] != historyVersion || v[1]&^(historyFlagSign|historyFlagSelf) != 0 {
		return e, fmt.Errorf("%w: history entry header", ErrCorrupt)
	}
	e.Signed, e.Local = v[1]&historyFlagSign != 0, v[1]&historyFlagSelf != 0
	p := v[2:]
	e.Seq = binary.BigEndian.Uint64(p)
	e.Received = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:]))).UTC()
	e.Hops = p[16]
	p = p[17:]
	p = p[copy(e.From[:], p):]
	p = p[copy(e.Sender.SigningKey[:], p):]
	p = p[copy(e.Sender.KEMKeyHash[:], p):]
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	if e.Seq == 0 || n > protocol.MaxChannelFrameSize || uint64(n) != uint64(len(p)) {
		return HistoryEntry{}, fmt.Errorf("%w: history entry body length %d, %d bytes follow", ErrCorrupt, n, len(p))
	}
	e.Body = append([]byte{}, p...)
	return e, nil
}

// AppendHistory appends entries to their channels' histories, giving them
// sequence numbers (returned in order), and keeps only the latest keep
// entries of each channel. History is a convenience, not a promise: a
// batch too big for one transaction is written entry by entry.
func (s *Store) AppendHistory(entries []HistoryEntry, keep int) ([]uint64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.histSeq == 0 {
		if err := s.loadHistorySeq(); err != nil {
			return nil, err
		}
	}
	seqs := make([]uint64, len(entries))
	vals := make([][]byte, len(entries))
	for i := range entries {
		entries[i].Seq = s.histSeq + uint64(i)
		v, err := encodeHistory(&entries[i])
		if err != nil {
			return nil, err
		}
		vals[i], seqs[i] = v, entries[i].Seq
	}
	write := func(from, to int) error {
		return s.updateLocked(func(txn guardTxn) error {
			for i := from; i < to; i++ {
				if err := txn.Set(historyKey(entries[i].Channel, entries[i].Seq), vals[i]); err != nil {
					return err
				}
			}
			return txn.Set([]byte(keyChannelSeq), binary.BigEndian.AppendUint64(nil, entries[to-1].Seq+1))
		})
	}
	err := write(0, len(entries))
	if errors.Is(err, ErrBatchTooBig) {
		for i := range entries {
			if err = write(i, i+1); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	s.histSeq += uint64(len(entries))
	touched := map[protocol.ChannelID]int{}
	for _, e := range entries {
		touched[e.Channel]++
	}
	for id, added := range touched {
		if err := s.trimHistory(id, added, keep); err != nil {
			return seqs, err
		}
	}
	return seqs, nil
}

// trimHistory deletes the oldest entries of a channel beyond keep.
func (s *Store) trimHistory(id protocol.ChannelID, added, keep int) error {
	n, ok := s.histN[id]
	if !ok {
		keys, err := s.historyKeys(id, -1)
		if err != nil {
			return err
		}
		n = len(keys)
	} else {
		n += added
	}
	s.histN[id] = n
	if n <= keep {
		return nil
	}
	keys, err := s.historyKeys(id, n-keep)
	if err != nil {
		return err
	}
	if err := s.deleteKeys(keys); err != nil {
		return err
	}
	s.histN[id] = n - len(keys)
	return nil
}

// historyKeys returns the first limit history keys of a channel (all with
// limit < 0), oldest first.
func (s *Store) historyKeys(id protocol.ChannelID, limit int) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: historyChanPrefix(id)})
		defer it.Close()
		for it.Rewind(); it.Valid() && (limit < 0 || len(keys) < limit); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: history keys: %w", err)
	}
	return keys, nil
}

// deleteKeys deletes keys in transactions of a bounded size.
func (s *Store) deleteKeys(keys [][]byte) error {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 1000)]
		keys = keys[len(chunk):]
		if err := s.updateLocked(func(txn guardTxn) error {
			for _, k := range chunk {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) loadHistorySeq() error {
	return s.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, keyChannelSeq)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			s.histSeq = 1
		case err != nil:
			return fmt.Errorf("store: read channel counter: %w", err)
		case len(v) != 8 || binary.BigEndian.Uint64(v) == 0:
			return fmt.Errorf("%w: channel counter %x", ErrCorrupt, v)
		default:
			s.histSeq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
}

// History returns up to limit entries of a channel with sequence numbers
// above after, oldest first, the cursor for the next page (the last
// sequence number returned, or after) and whether more follow. A damaged
// entry is skipped.
func (s *Store) History(id protocol.ChannelID, after uint64, limit int) (entries []HistoryEntry, next uint64, more bool, err error) {
	if limit <= 0 {
		limit = 100
	}
	next = after
	if after == ^uint64(0) {
		return nil, after, false, nil
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: historyChanPrefix(id), PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(historyKey(id, after+1)); it.Valid(); it.Next() {
			if len(entries) == limit {
				more = true
				return nil
			}
			k := it.Item().Key()
			seq := binary.BigEndian.Uint64(k[len(k)-8:])
			next = seq
			var e HistoryEntry
			err := it.Item().Value(func(v []byte) error {
				var err error
				e, err = DecodeHistoryEntry(v)
				return err
			})
			if err != nil || e.Seq != seq {
				s.cfg.logger.Warn("skipping a damaged channel history entry", "channel", id, "seq", seq)
				continue
			}
			e.Channel = id
			entries = append(entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, after, false, fmt.Errorf("store: history: %w", err)
	}
	return entries, next, more, nil
}

// update runs f in one synced transaction under the writer lock. f's
// transaction refuses the keys the write-ahead log owns (guardTxn): a
// replay of the log could undo a write to them made outside it.
func (s *Store) update(f func(txn guardTxn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.updateLocked(f)
}

func (s *Store) updateLocked(f func(txn guardTxn) error) error {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := f(guardTxn{txn}); err != nil {
		return wrapTxnErr(err)
	}
	s.dsync.wroteOpaque(s.db.MaxBatchSize())
	if s.cfg.afterCount != nil {
		s.cfg.afterCount()
	}
	if err := s.commitValuesFirst(txn); err != nil {
		return wrapTxnErr(err)
	}
	s.dsync.wal.mayUseVlog() // written now: the next sync is a DB.Sync
	return s.syncNow()
}
