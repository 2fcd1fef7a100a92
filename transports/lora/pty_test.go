package lora

import (
	"context"
	"errors"
	"testing"
	"time"

	"meshd.dev/meshd/transports/lora/loratest"
)

// TestDriverOverPTY runs start-up, a received packet, a send and an unplug
// over a real pseudo-terminal through go.bug.st/serial.
func TestDriverOverPTY(t *testing.T) {
	m, path, keep, err := loratest.PTY()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	go m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port, err := OpenSerial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	keep.Close()
	d, err := Start(ctx, port, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	m.Receive([]byte{0xC0, 1, 0xDB}, -110, -3.5)
	select {
	case p := <-d.Packets():
		if len(p.Data) != 3 || p.RSSI != -110 || p.SNR != -3.5 {
			t.Fatalf("packet %+v", p)
		}
	case <-ctx.Done():
		t.Fatal("no packet over the pty")
	}
	if err := d.Send(ctx, []byte{0xC0, 0xDB, 7}); err != nil {
		t.Fatal(err)
	}
	m.Conn.Close() // the modem vanishes
	select {
	case <-d.Done():
	case <-ctx.Done():
		t.Fatal("driver did not notice the pty closing")
	}
	if !errors.Is(d.Err(), ErrPort) {
		t.Fatalf("driver ended with %v, want ErrPort", d.Err())
	}
}
