package rnode

// The RNode host protocol's framing, commands and codes are those of
// meshd.dev/meshd/transports/lora/kiss, which the host driver uses too. What
// is here is the firmware's own: commands the driver never sends, and the
// sizes of the ESP32 build's buffers (RNode_Firmware Config.h, Boards.h).
const (
	cmdROMWrite    = 0x52 // address, byte: write the EEPROM
	cmdUnknown     = 0xFE // parser state: no command byte yet
	cmdL           = 64   // command argument buffer
	queueSize      = 6144 // transmit queue, bytes
	queueMaxLength = 200  // transmit queue, packets
	seqUnset       = 0xFF // no split packet being assembled
)
