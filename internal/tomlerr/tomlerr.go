// Package tomlerr turns go-toml decoding errors into messages that name the
// line, the column and the field, for configuration files and scenarios.
package tomlerr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Describe returns "line L, column C: unknown field "a.b"" style text for
// err, or err's own text when it is not a go-toml error.
func Describe(err error) string {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var parts []string
		for i := range sm.Errors {
			e := &sm.Errors[i]
			l, c := e.Position()
			parts = append(parts, fmt.Sprintf("line %d, column %d: unknown field %q", l, c, strings.Join(e.Key(), ".")))
		}
		return strings.Join(parts, "; ")
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		l, c := de.Position()
		if k := strings.Join(de.Key(), "."); k != "" {
			return fmt.Sprintf("line %d, column %d: field %q: %v", l, c, k, de.Error())
		}
		return fmt.Sprintf("line %d, column %d: %v", l, c, de.Error())
	}
	return err.Error()
}
