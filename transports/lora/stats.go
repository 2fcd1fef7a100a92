package lora

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Stats are a driver's counters and the modem's last reports.
type Stats struct {
	RxFrames, RxBytes uint64
	TxFrames, TxBytes uint64
	// RxDropped counts received packets dropped because Packets was not
	// read fast enough.
	RxDropped uint64
	// DecodeErrors counts malformed bytes and frames from the modem.
	DecodeErrors uint64
	// OtherFrames counts well-formed frames the driver does not use.
	OtherFrames uint64
	// ReadyNo counts READY answers 0x00 (queue full).
	ReadyNo uint64
	// ModemErrors counts ERROR frames by code; index 0 and the last index
	// hold unknown codes.
	ModemErrors [8]uint64

	LastRSSI  int
	LastSNR   float64
	HasSignal bool

	Channel    kiss.ChannelStats
	HasChannel bool

	Firmware      string
	Platform, MCU byte
}

// Stats returns a snapshot of the counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// logLimiter logs an event at most once per interval per key, with the
// number of times it happened since the last line.
type logLimiter struct {
	interval time.Duration
	log      *slog.Logger
	mu       sync.Mutex
	last     map[string]time.Time
	count    map[string]int
}

func newLogLimiter(interval time.Duration, log *slog.Logger) *logLimiter {
	return &logLimiter{interval: interval, log: log, last: map[string]time.Time{}, count: map[string]int{}}
}

func (l *logLimiter) warn(key, msg string, args ...any) { l.emit(slog.LevelWarn, key, msg, args...) }

func (l *logLimiter) info(key, msg string, args ...any) { l.emit(slog.LevelInfo, key, msg, args...) }

func (l *logLimiter) emit(level slog.Level, key, msg string, args ...any) {
	l.mu.Lock()
	l.count[key]++
	now := time.Now()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		l.mu.Unlock()
		return
	}
	n := l.count[key]
	l.count[key] = 0
	l.last[key] = now
	l.mu.Unlock()
	l.log.Log(context.Background(), level, msg, append(args, "times", n, "per", l.interval)...)
}
