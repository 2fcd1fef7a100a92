package main

import (
	"strings"
	"testing"
	"time"

	"meshd.dev/meshd/rpcapi"
)

// TestPrintPeerEvents: a TCP link's events name its kind and remote
// address (it has no peer ID); libp2p ones keep their peer ID.
func TestPrintPeerEvents(t *testing.T) {
	var b strings.Builder
	printEvent(&b, &rpcapi.Event{Kind: rpcapi.EventPeerUp, Peer: &rpcapi.Peer{Kind: "tcp", Addrs: []string{"192.0.2.1:7723"}, Address: "ab"}})
	printEvent(&b, &rpcapi.Event{Kind: rpcapi.EventPeerDown, Peer: &rpcapi.Peer{PeerID: "12D3KooWx", Address: "cd"}})
	want := rpcapi.EventPeerUp + " tcp 192.0.2.1:7723 ab\n" + rpcapi.EventPeerDown + " 12D3KooWx cd\n"
	if b.String() != want {
		t.Errorf("printed %q, want %q", b.String(), want)
	}
}

// TestLinkColumns: the radio columns read "-" on links without a radio
// and show signal and airtime on radios.
func TestLinkColumns(t *testing.T) {
	rssi, snr := -97.0, 6.5
	r := &rpcapi.LinkRadio{RSSI: &rssi, SNR: &snr, AirtimeUsedMS: 1500, AirtimeLeftMS: 34500, DutyCycle: 0.01}
	if got := radioSignal(r); got != "-97 dBm / 6.5 dB" {
		t.Errorf("signal %q", got)
	}
	if got := airtime(r); got != "1.5s / 34.5s (1% duty cycle)" {
		t.Errorf("airtime %q", got)
	}
	if radioSignal(nil) != "-" || airtime(nil) != "-" || radioSignal(&rpcapi.LinkRadio{}) != "-" {
		t.Error("no radio should print -")
	}
	if got := size(3 << 20); got != "3.0 MiB" {
		t.Errorf("size %q", got)
	}
}

func TestWaitingNote(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	retry := now.Add(12 * time.Second)
	l := rpcapi.Link{Kind: "tcp", Name: "192.0.2.1:7723", State: "down", Error: "connection refused", Retry: &retry}
	if got, want := waitingNote(l, now), "tcp 192.0.2.1:7723: down, next attempt in 12s: connection refused"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
