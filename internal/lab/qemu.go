package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// The MACs of the image tests' NICs: QEMU's own prefix, uplink first.
const (
	VMUplinkMAC = "52:54:00:00:00:01"
	VMLANMAC    = "52:54:00:00:00:02"
)

// VMOptions describes a QEMU guest for the image tests and the demo: a
// PC (TCG, no KVM) with its serial console on the process's output, a
// virtio-rng (so the guest's entropy pool fills at once), the uplink as
// virtio-net and the LAN as e1000e, two different drivers for coldplug to
// find.
type VMOptions struct {
	// Kernel and Initrd boot the kernel directly, with Append as its
	// command line; empty Kernel boots from disk or network as the BIOS
	// does.
	Kernel, Initrd, Append string
	// Disk is a raw image attached as virtio-blk, "" for none; with
	// AHCI, as a SATA disk behind an AHCI controller, like an apu2's
	// mSATA SSD (its driver chain, ahci then sd_mod, probes later).
	Disk string
	AHCI bool
	// UplinkTap is the tap in the VM's namespace for the uplink; ""
	// puts the uplink on QEMU's user network (NAT, DHCP server
	// 10.0.2.2 giving 10.0.2.15, TFTP from TFTPDir with BootFile).
	UplinkTap         string
	TFTPDir, BootFile string
	// NetBoot boots from the uplink NIC's iPXE ROM (-boot n).
	NetBoot bool
	// LANTap is the tap for the LAN; it must exist in the namespace.
	LANTap string
	// Memory in MiB; 0 means 512.
	Memory int
	// Reboot lets the guest reboot: a reboot, or a reset by a watchdog
	// device, restarts the VM (firmware, then the kernel given or the
	// disk) as it would a real box. Without it QEMU exits instead
	// (-no-reboot), which is how the tests see a clean reboot end.
	Reboot bool
	// QEMUArgs are added to QEMU's command line as they are, after the
	// rest: devices nothing above describes ("-device", "i6300esb").
	QEMUArgs []string
	// SerialSocket connects the serial console (the guest's ttyS0) to
	// a unix socket instead of QEMU's stdout, for a test that types on
	// the console (VM.Type). What the guest writes there still goes to
	// Output and the log, as with stdout.
	SerialSocket bool
}

// VM is a running QEMU guest.
type VM struct {
	*Process
	monitor string // path of the human monitor's unix socket
	// serial is the console's connection once QEMU has made it, with
	// VMOptions.SerialSocket; serialErr why there is none.
	serialReady chan struct{}
	serial      net.Conn
	serialErr   error
}

// Tap creates a tap link named name in n, up, for a VM to open.
func (l *Lab) Tap(n *Netns, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"ip", "tuntap", "add", "dev", name, "mode", "tap"},
		{"ip", "link", "set", name, "up"},
	} {
		if _, err := n.Run(ctx, args[0], args[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// StartVM boots a QEMU guest in namespace n (where its taps are). It is
// stopped with the lab, like any process; Shutdown stops it cleanly.
func (l *Lab) StartVM(n *Netns, opt VMOptions) (*VM, error) {
	mem := opt.Memory
	if mem == 0 {
		mem = 512
	}
	l.mu.Lock()
	l.counter++
	monitor := filepath.Join(l.dir, fmt.Sprintf("qemu-%d.monitor", l.counter))
	l.mu.Unlock()
	args := []string{
		"-m", fmt.Sprint(mem), "-nodefaults", "-no-user-config", "-display", "none",
		"-monitor", "unix:" + monitor + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	// The lab listens and QEMU connects as it starts, so the console
	// loses nothing of the boot, and nothing waits for a client.
	var serial *net.UnixListener
	if opt.SerialSocket {
		path := strings.TrimSuffix(monitor, ".monitor") + ".serial"
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("lab: serial console socket: %w", err)
		}
		serial = ln
		args = append(args, "-chardev", "socket,id=console,path="+path, "-serial", "chardev:console")
	} else {
		args = append(args, "-serial", "stdio")
	}
	if !opt.Reboot {
		args = append(args, "-no-reboot")
	}
	if opt.Kernel != "" {
		args = append(args, "-kernel", opt.Kernel, "-initrd", opt.Initrd, "-append", opt.Append)
	}
	switch {
	case opt.Disk != "" && opt.AHCI:
		args = append(args, "-device", "ahci,id=ahci",
			"-drive", "file="+opt.Disk+",format=raw,if=none,id=disk",
			"-device", "ide-hd,drive=disk,bus=ahci.0")
	case opt.Disk != "":
		args = append(args, "-drive", "file="+opt.Disk+",format=raw,if=virtio")
	}
	uplink := "user,id=up"
	if opt.TFTPDir != "" {
		uplink += ",tftp=" + opt.TFTPDir + ",bootfile=" + opt.BootFile
	}
	if opt.UplinkTap != "" {
		uplink = "tap,id=up,ifname=" + opt.UplinkTap + ",script=no,downscript=no"
	}
	nic := "virtio-net-pci,netdev=up,mac=" + VMUplinkMAC
	if opt.NetBoot {
		nic += ",bootindex=1"
		args = append(args, "-boot", "n")
	} else {
		// Without a ROM the BIOS goes straight to the disk instead of
		// trying iPXE first.
		nic += ",romfile="
	}
	args = append(args, "-netdev", uplink, "-device", nic)
	if opt.LANTap != "" {
		args = append(args,
			"-netdev", "tap,id=lan,ifname="+opt.LANTap+",script=no,downscript=no",
			"-device", "e1000e,netdev=lan,mac="+VMLANMAC+",romfile=")
	}
	args = append(args, opt.QEMUArgs...)
	p, err := l.Start(n, "qemu-system-x86_64", args...)
	if err != nil {
		if serial != nil {
			serial.Close()
		}
		return nil, err
	}
	vm := &VM{Process: p, monitor: monitor, serialReady: make(chan struct{})}
	if serial == nil {
		vm.serialErr = errors.New("lab: the VM's console is on stdout, not a socket (VMOptions.SerialSocket)")
		close(vm.serialReady)
		return vm, nil
	}
	go vm.acceptSerial(serial)
	return vm, nil
}

// acceptSerial takes QEMU's connection to the console socket and copies
// what the guest writes to the process's output.
func (vm *VM) acceptSerial(ln *net.UnixListener) {
	ln.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ln.Accept()
	ln.Close()
	vm.serial, vm.serialErr = c, err
	if err != nil {
		vm.serialErr = fmt.Errorf("lab: %s did not connect its console: %w", vm, err)
	}
	close(vm.serialReady)
	if err == nil {
		io.Copy(procWriter{vm.Process}, c)
		c.Close()
	}
}

// Type sends s to the guest's serial console, as keys typed on a
// terminal ("\r" is Enter), for a VM started with
// VMOptions.SerialSocket.
func (vm *VM) Type(s string) error {
	select {
	case <-vm.serialReady:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("lab: %s: no console connection", vm)
	}
	if vm.serialErr != nil {
		return vm.serialErr
	}
	vm.serial.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(vm.serial, s); err != nil {
		return fmt.Errorf("lab: type on %s's console: %w", vm, err)
	}
	return nil
}

// kernelBanner starts the first line a Linux kernel prints.
const kernelBanner = "Linux version "

// Boots counts the kernels that started on the console so far: 1 after
// power-on, and one more for each kexec, and, with VMOptions.Reboot, each
// reboot or watchdog reset. It needs the kernel's messages on the serial
// console (console=ttyS0, without quiet).
func (vm *VM) Boots() int {
	return strings.Count(vm.Output(), kernelBanner)
}

// Monitor sends one command to QEMU's human monitor.
func (vm *VM) Monitor(cmd string) error {
	var c net.Conn
	var err error
	for i := 0; i < 50; i++ { // the socket appears once QEMU is up
		if c, err = net.Dial("unix", vm.monitor); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lab: qemu monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return fmt.Errorf("lab: qemu monitor %q: %w", cmd, err)
	}
	// Read the echo so the command has run before we hang up.
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), cmd) {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return fmt.Errorf("lab: qemu monitor %q: %w", cmd, err)
		}
	}
	return nil
}

// Shutdown presses Ctrl-Alt-Del, which the router's PID 1 takes as a
// clean stop (services, sync, unmount /perm, reboot); with -no-reboot
// QEMU then exits. It waits up to timeout for that.
func (vm *VM) Shutdown(timeout time.Duration) error {
	return vm.stopWith("sendkey ctrl-alt-delete", timeout)
}

// PowerDown presses the ACPI power button, which the router's PID 1
// takes as a clean power-off, and waits up to timeout for QEMU to exit.
func (vm *VM) PowerDown(timeout time.Duration) error {
	return vm.stopWith("system_powerdown", timeout)
}

func (vm *VM) stopWith(cmd string, timeout time.Duration) error {
	if err := vm.Monitor(cmd); err != nil {
		return err
	}
	select {
	case <-vm.Exited():
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("lab: %s did not stop within %v of %s", vm, timeout, cmd)
	}
}
