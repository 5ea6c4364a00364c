// Command hang is the /init of the test image `make image FAULT=hang`
// builds: it says so on the console and then does nothing, forever, as
// an image that hangs at boot would. It never opens the watchdog, which
// the previous image's PID 1 left armed: the update's test shows that
// the watchdog then resets the router, and that the cold boot runs the
// committed image. It is never part of a router's image.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	fmt.Fprintln(os.Stderr, "hang: this test image hangs on purpose (make image FAULT=hang)")
	// Not select{}: with no other goroutine the runtime would call that
	// a deadlock and exit, and PID 1 exiting panics the kernel, which
	// reboots: a crash, not a hang.
	for {
		time.Sleep(time.Hour)
	}
}
