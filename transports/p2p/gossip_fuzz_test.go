package p2p

import (
	"bytes"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"meshd.dev/meshd/protocol"
)

// FuzzGossipMessageID: any data gets an ID without panicking; a channel
// frame's ID starts with its dedup key and does not depend on the hop
// count, and other data gets a hash ID.
func FuzzGossipMessageID(f *testing.F) {
	key := protocol.ChannelKey{1, 2, 3}
	frame, err := protocol.SealChannel(bytes.NewReader(make([]byte, 64)), key, 5, time.Unix(1.8e9, 0), []byte("hi"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frame)
	f.Add([]byte{})
	f.Add([]byte{0x25})
	f.Add(frame[:len(frame)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		id := GossipMessageID(&pb.Message{Data: data})
		fr, err := protocol.ParseChannelFrame(data)
		if err != nil {
			if len(id) != 33 || id[0] != msgIDOther {
				t.Fatalf("ID of non-frame: %x", id)
			}
			return
		}
		k := fr.DedupKey()
		if len(id) != 1+len(k)+msgIDHashSize || id[0] != msgIDFrame || id[1:1+len(k)] != string(k[:]) {
			t.Fatalf("ID of frame: %x, dedup key %x", id, k)
		}
		if protocol.IncrementChannelHops(data) == nil && GossipMessageID(&pb.Message{Data: data}) != id {
			t.Fatal("ID changed with the hop count")
		}
	})
}

// FuzzParseChannelTopic: any name parses or not without panicking, and a
// name that parses is the one ChannelTopic writes.
func FuzzParseChannelTopic(f *testing.F) {
	f.Add(ChannelTopic(protocol.ChannelID{0xde, 0xad, 0xbe, 0xef}))
	f.Add("/meshd/ch/1/DEADBEEF")
	f.Add("/meshd/ch/1/")
	f.Fuzz(func(t *testing.T, name string) {
		id, ok := parseChannelTopic(name)
		if ok && ChannelTopic(id) != name {
			t.Fatalf("%q parsed as %v", name, id)
		}
	})
}
