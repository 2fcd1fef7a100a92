package kiss

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestEncodeEscapes(t *testing.T) {
	got, err := Encode(CmdData, []byte{0x01, FEND, 0x02, FESC, 0x03})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{FEND, 0x00, 0x01, FESC, TFEND, 0x02, FESC, TFESC, 0x03, FEND}
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode = % X, want % X", got, want)
	}
	if _, err := Encode(FEND, nil); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("Encode(FEND) err = %v, want ErrBadCommand", err)
	}
}

// The exact bytes Reticulum's host driver sends to detect a modem, and the
// firmware's answers.
func TestDetectBytes(t *testing.T) {
	var b []byte
	for _, c := range []struct {
		cmd byte
		arg byte
	}{{CmdDetect, DetectReq}, {CmdFWVersion, 0x00}, {CmdPlatform, 0x00}, {CmdMCU, 0x00}} {
		b, _ = Append(b, c.cmd, []byte{c.arg})
	}
	want := []byte{0xC0, 0x08, 0x73, 0xC0, 0xC0, 0x50, 0x00, 0xC0, 0xC0, 0x48, 0x00, 0xC0, 0xC0, 0x49, 0x00, 0xC0}
	if !bytes.Equal(b, want) {
		t.Fatalf("detect = % X, want % X", b, want)
	}
	// Reticulum shares FENDs between frames: C0 08 73 C0 50 00 C0 ... must
	// decode to the same four frames.
	shared := []byte{0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0, 0x48, 0x00, 0xC0, 0x49, 0x00, 0xC0}
	frames := decodeAll(t, shared, 16)
	if len(frames) != 4 || frames[0].Cmd != CmdDetect || frames[3].Cmd != CmdMCU {
		t.Fatalf("shared FENDs decoded to %v", frames)
	}
}

func decodeAll(t *testing.T, in []byte, max int) []Frame {
	t.Helper()
	d := NewDecoder(bytes.NewReader(in), max)
	var out []Frame
	for {
		f, err := d.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, f)
	}
}

func TestDecodeSkipsLeadingNoiseAndIdleFill(t *testing.T) {
	in := []byte("boot banner\r\n")
	in = append(in, FEND, FEND, FEND, CmdSF, 9, FEND, FEND)
	frames := decodeAll(t, in, 8)
	if len(frames) != 1 || frames[0].Cmd != CmdSF || !bytes.Equal(frames[0].Data, []byte{9}) {
		t.Fatalf("frames = %v", frames)
	}
}

func TestDecodeTooLongResyncs(t *testing.T) {
	in := []byte{FEND, CmdData}
	in = append(in, bytes.Repeat([]byte{0x55}, 100)...)
	in = append(in, FEND, CmdSF, 7, FEND)
	d := NewDecoder(bytes.NewReader(in), 10)
	if _, err := d.Next(); !errors.Is(err, ErrFrameTooLong) {
		t.Fatalf("first Next err = %v, want ErrFrameTooLong", err)
	}
	f, err := d.Next()
	if err != nil || f.Cmd != CmdSF || !bytes.Equal(f.Data, []byte{7}) {
		t.Fatalf("after overflow: %v %v, want SF 7", f, err)
	}
	if cap(d.p.buf) > 16 {
		t.Fatalf("parser buffer grew to %d bytes for a 10-byte limit", cap(d.p.buf))
	}
}

func TestDecodeBadEscape(t *testing.T) {
	in := []byte{FEND, CmdData, 1, FESC, 0x41, 2, FEND, CmdCR, 5, FEND}
	d := NewDecoder(bytes.NewReader(in), 10)
	if _, err := d.Next(); !errors.Is(err, ErrBadEscape) {
		t.Fatalf("err = %v, want ErrBadEscape", err)
	}
	if f, err := d.Next(); err != nil || f.Cmd != CmdCR {
		t.Fatalf("after bad escape: %v %v", f, err)
	}
	// Lenient keeps the byte, as the firmware does.
	d = NewDecoder(bytes.NewReader(in), 10)
	d.Parser().Lenient = true
	f, err := d.Next()
	if err != nil || !bytes.Equal(f.Data, []byte{1, 0x41, 2}) {
		t.Fatalf("lenient: %v %v", f, err)
	}
}

func TestDecodeGarbageBounded(t *testing.T) {
	in := bytes.Repeat([]byte{0x11}, 10000)
	d := NewDecoder(bytes.NewReader(in), 10)
	n := 0
	for {
		_, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if !errors.Is(err, ErrGarbage) {
			t.Fatalf("err = %v, want ErrGarbage", err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("10000 bytes of garbage reported no ErrGarbage")
	}
	if cap(d.p.buf) != 0 {
		t.Fatalf("garbage was buffered: %d bytes", cap(d.p.buf))
	}
}

func TestRSSISNR(t *testing.T) {
	if got := RSSIFromByte(RSSIByte(-120)); got != -120 {
		t.Fatalf("RSSI round trip = %d", got)
	}
	if RSSIByte(-120) != 37 {
		t.Fatalf("RSSIByte(-120) = %d, want 37", RSSIByte(-120))
	}
	for _, c := range []struct {
		b  byte
		db float64
	}{{0x00, 0}, {0x28, 10}, {0xF6, -2.5}, {0x80, -32}, {0x7F, 31.75}} {
		if got := SNRFromByte(c.b); got != c.db {
			t.Errorf("SNRFromByte(%#x) = %v, want %v", c.b, got, c.db)
		}
		if got := SNRByte(c.db); got != c.b {
			t.Errorf("SNRByte(%v) = %#x, want %#x", c.db, got, c.b)
		}
	}
	if SNRByte(-100) != 0x80 || SNRByte(100) != 0x7F {
		t.Fatal("SNRByte does not clamp")
	}
}

func TestChannelStatsRoundTrip(t *testing.T) {
	c := ChannelStats{AirtimeShort: 150, AirtimeLong: 99, LoadShort: 2500, LoadLong: 1200, CurrentRSSI: 40, NoiseFloor: 50, Interference: NoInterference}
	got, err := ParseChannelStats(c.Marshal())
	if err != nil || got != c {
		t.Fatalf("round trip = %+v %v", got, err)
	}
	if _, err := ParseChannelStats([]byte{1, 2}); !errors.Is(err, ErrShortArg) {
		t.Fatalf("short stats err = %v", err)
	}
}

func FuzzKISSDecode(f *testing.F) {
	f.Add([]byte{FEND, CmdData, 1, 2, 3, FEND})
	f.Add([]byte{FEND, CmdData, FESC, TFEND, FESC, TFESC, FEND})
	f.Add([]byte{0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0})
	f.Add([]byte{FEND, CmdData, FESC, 0x01, FEND, CmdSF, 9, FEND})
	f.Add([]byte{FEND, CmdStatRSSI, 40, FEND, FEND, CmdStatSNR, 0x28, FEND, FEND, CmdData, 0xAA, FEND})
	f.Add(bytes.Repeat([]byte{0x41}, 300))
	f.Add(append([]byte{FEND, CmdData}, bytes.Repeat([]byte{FESC, TFEND}, 40)...))
	const max = 32
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in), max)
		for {
			fr, err := d.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrFrameTooLong) && !errors.Is(err, ErrBadEscape) && !errors.Is(err, ErrGarbage) {
					t.Fatalf("unexpected error %v", err)
				}
				continue
			}
			if len(fr.Data) > max {
				t.Fatalf("frame of %d bytes over limit %d", len(fr.Data), max)
			}
			if fr.Cmd == FEND {
				t.Fatal("decoded FEND as a command")
			}
			if fr.Cmd == FESC {
				continue // decodable, not encodable: the firmware reads commands raw
			}
			enc, err := Encode(fr.Cmd, fr.Data)
			if err != nil {
				t.Fatal(err)
			}
			back := decodeAll(t, enc, max)
			if len(back) != 1 || back[0].Cmd != fr.Cmd || !bytes.Equal(back[0].Data, fr.Data) {
				t.Fatalf("re-encoding %v decoded to %v", fr, back)
			}
		}
		if cap(d.p.buf) > 2*max+8 {
			t.Fatalf("buffer grew to %d", cap(d.p.buf))
		}
	})
}

// BenchmarkKISSDecode decodes DATA frames of 254 random-looking bytes (with
// the escapes they need), as a modem sends them.
func BenchmarkKISSDecode(b *testing.B) {
	var stream []byte
	for i := 0; i < 64; i++ {
		data := make([]byte, 254)
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		stream, _ = Append(stream, CmdData, data)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDecoder(bytes.NewReader(stream), MaxHostFrame)
		for {
			if _, err := d.Next(); err != nil {
				break
			}
		}
	}
}
