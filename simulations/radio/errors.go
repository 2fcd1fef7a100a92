package radio

import "errors"

// Sentinel errors. Functions wrap them with the offending field or value, so
// callers branch with errors.Is and users read which field was wrong.
var (
	// ErrInvalidParams reports modulation parameters the radio cannot use.
	ErrInvalidParams = errors.New("radio: invalid modulation parameters")
	// ErrPayloadSize reports a LoRa payload outside 0..255 bytes.
	ErrPayloadSize = errors.New("radio: payload size out of range")
	// ErrInvalidModel reports an unusable propagation or receiver model.
	ErrInvalidModel = errors.New("radio: invalid propagation model")
	// ErrInvalidNode reports a node with an impossible position or radio.
	ErrInvalidNode = errors.New("radio: invalid node")
	// ErrUnknownNode reports a node ID the medium does not have.
	ErrUnknownNode = errors.New("radio: unknown node")
	// ErrUnknownTx reports a transmission ID the medium never issued or has
	// already forgotten.
	ErrUnknownTx = errors.New("radio: unknown or forgotten transmission")
	// ErrSameNode reports a question about a frame received by its own
	// sender.
	ErrSameNode = errors.New("radio: receiver is the sender")
	// ErrBusy reports a node asked to transmit while it is still
	// transmitting (a LoRa radio sends one frame at a time).
	ErrBusy = errors.New("radio: node is already transmitting")
	// ErrTimeOrder reports a time earlier than one the caller already
	// passed: the medium and the duty-cycle accountant move forward only.
	ErrTimeOrder = errors.New("radio: time went backwards")
	// ErrOutsideBand reports a channel that lies in no sub-band of the
	// band plan.
	ErrOutsideBand = errors.New("radio: channel outside every sub-band")
	// ErrInvalidBand reports a malformed sub-band or band plan.
	ErrInvalidBand = errors.New("radio: invalid sub-band")
	// ErrInvalidAirtime reports a zero or negative airtime given to the
	// duty-cycle accounting.
	ErrInvalidAirtime = errors.New("radio: airtime must be positive")
	// ErrPowerLimit reports a transmitter above its sub-band's power limit.
	ErrPowerLimit = errors.New("radio: transmit power above the sub-band's limit")
	// ErrNoRand reports a missing random generator where one is needed.
	ErrNoRand = errors.New("radio: no random generator")
)
