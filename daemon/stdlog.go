package daemon

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// RouteStdLog sends what libraries write with the standard log package
// (zeroconf's "[zeroconf] no suitable IPv4 interface", say) through l, one
// warning per line with component "stdlog", so that --log-format json
// output stays one JSON object per line.
func RouteStdLog(l *slog.Logger) {
	log.SetFlags(0)
	log.SetPrefix("")
	log.SetOutput(stdlogWriter{l.With("component", "stdlog")})
}

type stdlogWriter struct{ l *slog.Logger }

func (w stdlogWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			w.l.Log(context.Background(), slog.LevelWarn, string(line))
		}
	}
	return len(p), nil
}
