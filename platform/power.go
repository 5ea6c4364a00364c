package platform

import (
	"encoding/binary"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/homerouter/homerouter/state"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
)

// inputEventSize is sizeof(struct input_event) on 64-bit Linux: a
// timeval (16 bytes), type and code (2 each), value (4).
const inputEventSize = 24

// hasKey reports whether an input device's key capability bitmap, as
// sysfs prints it (hex words of the reader's long, most significant
// first, leading zero words left out), has key set.
func hasKey(caps string, key int) bool {
	words := strings.Fields(caps)
	i := len(words) - 1 - key/bits.UintSize
	if i < 0 {
		return false
	}
	w, err := strconv.ParseUint(words[i], 16, bits.UintSize)
	return err == nil && w&(1<<(key%bits.UintSize)) != 0
}

// isPowerPress reports whether ev, one input_event, is a power key
// going down.
func isPowerPress(ev []byte) bool {
	typ := binary.NativeEndian.Uint16(ev[16:])
	code := binary.NativeEndian.Uint16(ev[18:])
	value := int32(binary.NativeEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && value == 1
}

// watchPowerButton makes the power button (the ACPI button driver's input
// device, or a keyboard's power key) a clean power-off: see powerButton.
// Devices that appear later (a USB keyboard plugged in after boot) are
// not watched.
func (s *System) watchPowerButton(sysInput string) {
	devs, _ := filepath.Glob(filepath.Join(sysInput, "event*"))
	for _, dev := range devs {
		caps, err := os.ReadFile(filepath.Join(dev, "device/capabilities/key"))
		if err != nil || !hasKey(string(caps), keyPower) {
			continue
		}
		f, err := os.Open(filepath.Join("/dev/input", filepath.Base(dev)))
		if err != nil {
			s.logger.Printf("power button: %v", err)
			continue
		}
		s.logger.Printf("power button: watching %s", f.Name())
		go func() {
			defer f.Close()
			ev := make([]byte, inputEventSize)
			for {
				if _, err := io.ReadFull(f, ev); err != nil {
					return
				}
				if isPowerPress(ev) {
					s.powerButton()
				}
			}
		}()
	}
}

// powerButton stops the services as an accepted power-off request does
// (StopOnRequest), and Shutdown then powers off, unmounting /perm first.
// It wins over a request already under way: the person at the box wants
// it off, not rebooted into a new kernel.
func (s *System) powerButton() {
	s.requestMu.Lock()
	defer s.requestMu.Unlock()
	s.accept(state.PowerOff, "power button pressed: powering off")
}
