// Command hang is the /init of the test image `make image FAULT=hang`
// builds: it says so in the kernel's log (and so on the console) and
// then does nothing, forever, as an image that hangs at boot would. It
// never opens the watchdog, which the previous image's PID 1 left armed:
// the update's test shows that the watchdog then resets the router, and
// that the cold boot runs the committed image. It is never part of a
// router's image.
package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	// The initramfs has no /dev/console for init's stdio: the message
	// goes through the kernel's log, on a devtmpfs of our own.
	os.MkdirAll("/dev", 0o755)
	unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		kmsg.WriteString("hang: this test image hangs on purpose (make image FAULT=hang)\n")
		kmsg.Close()
	}
	// Not select{}: with no other goroutine the runtime would call that
	// a deadlock and exit, and PID 1 exiting panics the kernel, which
	// reboots: a crash, not a hang.
	for {
		time.Sleep(time.Hour)
	}
}
