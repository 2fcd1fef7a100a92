package store

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

func TestChannelsPersist(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	a := Channel{Key: protocol.ChannelKey{1}, Name: "ops", Joined: time.UnixMilli(1234).UTC()}
	b := Channel{Key: protocol.ChannelKey{2}, Name: "weather"}
	for _, c := range []Channel{a, b} {
		if err := s.PutChannel(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutChannel(Channel{Key: protocol.ChannelKey{3}}); err == nil {
		t.Error("a channel without a name was stored")
	}
	var entries []HistoryEntry
	for i := range 5 {
		entries = append(entries, HistoryEntry{Channel: a.ID(), Body: fmt.Appendf(nil, "a%d", i), Received: time.UnixMilli(int64(i)).UTC()})
		entries = append(entries, HistoryEntry{Channel: b.ID(), Body: fmt.Appendf(nil, "b%d", i), Signed: true, From: protocol.Address{9}})
	}
	seqs, err := s.AppendHistory(entries, 3)
	if err != nil || len(seqs) != 10 || seqs[0] != 1 || seqs[9] != 10 {
		t.Fatalf("AppendHistory: %v %v", seqs, err)
	}
	s.Close()

	s = openT(t, dir)
	chans, err := s.Channels()
	if err != nil || len(chans) != 2 {
		t.Fatalf("Channels after reopen: %v %v", chans, err)
	}
	if got := chans[0]; got.ID() == a.ID() && (got.Key != a.Key || got.Name != "ops" || !got.Joined.Equal(a.Joined)) {
		t.Errorf("channel a: %+v", got)
	}
	// Only the latest 3 of each channel remain; pages of 2 with a cursor.
	page, next, more, err := s.History(a.ID(), 0, 2)
	if err != nil || len(page) != 2 || !more || string(page[0].Body) != "a2" || string(page[1].Body) != "a3" {
		t.Fatalf("history page 1: %+v next %d more %v err %v", page, next, more, err)
	}
	page, next, more, err = s.History(a.ID(), next, 2)
	if err != nil || len(page) != 1 || more || string(page[0].Body) != "a4" || page[0].Channel != a.ID() {
		t.Fatalf("history page 2: %+v next %d more %v err %v", page, next, more, err)
	}
	// Sequence numbers continue after a restart.
	seqs, err = s.AppendHistory([]HistoryEntry{{Channel: b.ID(), Body: []byte("b5")}}, 3)
	if err != nil || seqs[0] != 11 {
		t.Fatalf("append after reopen: %v %v", seqs, err)
	}
	page, _, _, _ = s.History(b.ID(), 0, 10)
	if len(page) != 3 || string(page[2].Body) != "b5" || !page[0].Signed || page[0].From != (protocol.Address{9}) {
		t.Fatalf("history b: %+v", page)
	}
	// Leaving deletes the key and the history.
	if err := s.DeleteChannel(b.ID()); err != nil {
		t.Fatal(err)
	}
	chans, _ = s.Channels()
	if len(chans) != 1 || chans[0].ID() != a.ID() {
		t.Errorf("channels after delete: %+v", chans)
	}
	if page, _, _, _ := s.History(b.ID(), 0, 10); len(page) != 0 {
		t.Errorf("history of a deleted channel: %d entries", len(page))
	}
}

func FuzzDecodeHistoryEntry(f *testing.F) {
	v, _ := encodeHistory(&HistoryEntry{Seq: 7, Body: []byte("hi"), Signed: true})
	f.Add(v)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeHistoryEntry(b)
		if err != nil {
			return
		}
		again, err := encodeHistory(&e)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not round-trip: %x vs %x (%v)", b, again, err)
		}
	})
}

func FuzzDecodeChannel(f *testing.F) {
	v, _ := encodeChannel(&Channel{Name: "ops", Joined: time.UnixMilli(5)})
	f.Add(v)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChannel(b)
		if err != nil {
			return
		}
		if again, err := encodeChannel(&c); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decode/encode not round-trip: %x vs %x (%v)", b, again, err)
		}
	})
}

// TestLeaveCrashLeavesNoHistory: DeleteChannel removes the key first and
// the history after; a crash (kill -9) between the two must not leave the
// messages of a left channel on disk, nor bring them back on a rejoin.
func TestLeaveCrashLeavesNoHistory(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	c := Channel{Key: protocol.ChannelKey{1}, Name: "ops"}
	if err := s.PutChannel(c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendHistory([]HistoryEntry{{Channel: c.ID(), Body: []byte("secret")}}, 10); err != nil {
		t.Fatal(err)
	}
	// The first half of DeleteChannel, then the crash.
	if err := s.update(func(txn guardTxn) error { return txn.Delete(channelKey(c.ID())) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, dir)
	if keys, err := s.historyKeys(c.ID(), -1); err != nil || len(keys) != 0 {
		t.Errorf("after restart %d history entries of a left channel remain (%v)", len(keys), err)
	}
	if err := s.PutChannel(c); err != nil {
		t.Fatal(err)
	}
	if page, _, _, _ := s.History(c.ID(), 0, 10); len(page) != 0 {
		t.Errorf("rejoining brought back %d messages of before the leave", len(page))
	}
}
