package daemon

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/protocol"
)

// fuzzHeader is a valid header, for the fuzz seeds.
func fuzzHeader(t testing.TB) []byte {
	id, err := protocol.NewIdentity(bytes.NewReader(bytes.Repeat([]byte{7}, 256)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := id.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	h := BackupHeader{Address: id.Address(), Created: time.Unix(1_800_000_000, 0), Identity: raw,
		HostKey: marshalHostKey(bytes.Repeat([]byte{9}, 32))}
	return h.encode()
}

// FuzzDecodeBackupHeader: any input decodes to a header that encodes back
// to the bytes it read, or fails with ErrBackupCorrupt; never a panic.
func FuzzDecodeBackupHeader(f *testing.F) {
	good := fuzzHeader(f)
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), 1, 2, 3))
	f.Add(good[:len(good)-1])
	f.Add(good[:backupFixedLen+4])
	f.Add([]byte(backupMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := DecodeBackupHeader(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrBackupCorrupt) {
				t.Fatalf("error %v does not wrap ErrBackupCorrupt", err)
			}
			return
		}
		if enc := h.encode(); !bytes.HasPrefix(data, enc) {
			t.Fatalf("decoded %+v, which encodes to %x, not a prefix of the input", h, enc)
		}
	})
}

func TestBackupHeaderRoundTrip(t *testing.T) {
	good := fuzzHeader(t)
	h, err := DecodeBackupHeader(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.encode(), good) || h.Created.Unix() != 1_800_000_000 {
		t.Errorf("round trip: %+v", h)
	}
	// The identity key must be the header's address.
	bad := append([]byte(nil), good...)
	bad[len(backupMagic)+1] ^= 1
	if _, err := DecodeBackupHeader(bytes.NewReader(bad)); !errors.Is(err, ErrBackupCorrupt) {
		t.Errorf("address of another key: %v", err)
	}
}
