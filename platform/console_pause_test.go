package platform

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestConsolesPause writes the log to two consoles (pipes stand in for
// ttyS0 and tty0) through a sequence of pauses and resumes: a paused
// console gets nothing and counts the lines it missed, the other gets
// everything, pauses nest, a resume counts once, and an unknown name
// pauses nothing.
func TestConsolesPause(t *testing.T) {
	type step struct {
		pause  string // console to pause, or
		resume int    // index of a resume func to call (1-based), or
		write  string // a log write
		// wantDropped is what the resume reports.
		wantDropped int
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		wantS0   string
		wantTTY0 string
	}{
		{
			name:     "no pause",
			steps:    []step{{write: "a\n"}, {write: "b\n"}},
			wantS0:   "a\nb\n",
			wantTTY0: "a\nb\n",
		},
		{
			name: "pause and resume",
			steps: []step{
				{write: "before\n"},
				{pause: "ttyS0"},
				{write: "during 1\n"}, {write: "during 2\nduring 3\n"},
				{resume: 1, wantDropped: 3},
				{write: "after\n"},
			},
			wantS0:   "before\nafter\n",
			wantTTY0: "before\nduring 1\nduring 2\nduring 3\nafter\n",
		},
		{
			name: "resume twice counts once",
			steps: []step{
				{pause: "ttyS0"}, {write: "x\n"},
				{resume: 1, wantDropped: 1}, {resume: 1, wantDropped: 0},
				{write: "y\n"},
			},
			wantS0:   "y\n",
			wantTTY0: "x\ny\n",
		},
		{
			name: "nested pauses",
			steps: []step{
				{pause: "ttyS0"}, {pause: "ttyS0"}, {write: "x\n"},
				{resume: 1, wantDropped: 1}, {write: "still paused\n"},
				{resume: 2, wantDropped: 2}, {write: "y\n"},
			},
			wantS0:   "y\n",
			wantTTY0: "x\nstill paused\ny\n",
		},
		{
			name:     "unknown console",
			steps:    []step{{pause: "ttyS9"}, {write: "x\n"}, {resume: 1, wantDropped: 0}},
			wantS0:   "x\n",
			wantTTY0: "x\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s0, tty0 := consolePipe(t), consolePipe(t)
			c := &consoles{list: []console{{name: "ttyS0", fd: s0[1]}, {name: "tty0", fd: tty0[1]}}}
			var resumes []func() int
			for i, st := range tc.steps {
				switch {
				case st.pause != "":
					resumes = append(resumes, c.pause(st.pause))
				case st.resume > 0:
					if got := resumes[st.resume-1](); got != st.wantDropped {
						t.Errorf("step %d: resume %d dropped %d lines, want %d", i, st.resume, got, st.wantDropped)
					}
				default:
					c.Write([]byte(st.write))
				}
			}
			if got := readAll(s0[0]); got != tc.wantS0 {
				t.Errorf("ttyS0 got %q, want %q", got, tc.wantS0)
			}
			if got := readAll(tty0[0]); got != tc.wantTTY0 {
				t.Errorf("tty0 got %q, want %q", got, tc.wantTTY0)
			}
		})
	}
}

// consolePipe is a non-blocking pipe, closed at the test's end.
func consolePipe(t *testing.T) [2]int {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p
}

// readAll reads what a non-blocking pipe holds.
func readAll(fd int) string {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}
