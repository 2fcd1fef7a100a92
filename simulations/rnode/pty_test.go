//go:build linux

package rnode

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"meshd.dev/meshd/transports/lora/kiss"
)

// ptyHost is a host on a real pseudo-terminal, on the wall clock.
type ptyHost struct {
	t   *testing.T
	f   *os.File
	dec *kiss.Decoder
}

func openPTY(t *testing.T, path string) *ptyHost {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &ptyHost{t: t, f: f, dec: kiss.NewDecoder(f, kiss.MTU)}
}

func (p *ptyHost) cmd(cmd byte, data ...byte) {
	p.t.Helper()
	b, err := kiss.Encode(cmd, data)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.f.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// want reads frames until one with cmd arrives, or fails after 20 s of
// wall time (a bound on a hung test, not a wait: the frame comes in
// milliseconds).
func (p *ptyHost) want(cmd byte) kiss.Frame {
	p.t.Helper()
	if err := p.f.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		p.t.Fatal(err)
	}
	for {
		f, err := p.dec.Next()
		if err != nil {
			p.t.Fatalf("%s: waiting for %02X: %v", p.f.Name(), cmd, err)
		}
		if f.Cmd == cmd {
			return f
		}
	}
}

// TestPTY: two modems on pseudo-terminals on the wall clock; hosts detect
// them, configure them and exchange a packet through the terminals; one is
// unplugged (its terminal and link vanish, the host's read fails) and
// plugged back under the same link.
func TestPTY(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no /dev/ptmx")
	}
	h, err := New(Config{Nodes: []NodeConfig{{Name: "A"}, {Name: "B", X: 50}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dir := t.TempDir()
	pa, err := ServePTY(h, "A", filepath.Join(dir, "A"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ServePTY(h, "B", filepath.Join(dir, "B"))
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	a, b := openPTY(t, pa.Link), openPTY(t, pb.Path)
	for _, x := range []*ptyHost{a, b} {
		x.f.Write([]byte{kiss.FEND, kiss.CmdDetect, kiss.DetectReq, kiss.FEND})
		if f := x.want(kiss.CmdDetect); !bytes.Equal(f.Data, []byte{kiss.DetectResp}) {
			t.Fatalf("detect answer % X", f.Data)
		}
		x.cmd(kiss.CmdFrequency, kiss.U32(testFreq)...)
		x.cmd(kiss.CmdBandwidth, kiss.U32(250000)...)
		x.cmd(kiss.CmdTxPower, 10)
		x.cmd(kiss.CmdSF, 7)
		x.cmd(kiss.CmdRadioState, kiss.RadioStateOn)
		x.want(kiss.CmdRadioState)
	}
	p := payload(300) // FEND, FESC and, through the terminal, every byte value raw
	for i := range p {
		p[i] = byte(i)
	}
	a.cmd(kiss.CmdData, p...)
	b.want(kiss.CmdStatRSSI)
	b.want(kiss.CmdStatSNR)
	if got := b.want(kiss.CmdData); !bytes.Equal(got.Data, p) {
		t.Fatalf("B got % X", got.Data)
	}

	if err := pa.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(pa.Link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after unplug: %v", err)
	}
	a.f.SetReadDeadline(time.Now().Add(20 * time.Second))
	for { // what the modem sent before the cable went, then an error
		if _, err = a.dec.Next(); err != nil {
			break
		}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("reading an unplugged modem: %v, want an I/O error", err)
	}
	pa, err = ServePTY(h, "A", pa.Link)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	a = openPTY(t, pa.Link)
	a.cmd(kiss.CmdSF, 0xFF)
	if f := a.want(kiss.CmdSF); !bytes.Equal(f.Data, []byte{0}) {
		t.Fatalf("after replug SF is % X, want 00 (forgotten)", f.Data)
	}
}
