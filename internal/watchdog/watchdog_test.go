package watchdog

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// fired runs input under a watchdog with budget and says whether it
// fired, and what it wrote.
func fired(t *testing.T, budget time.Duration, input func(stop <-chan struct{})) (bool, string) {
	t.Helper()
	var (
		mu  sync.Mutex
		out strings.Builder
		hit = make(chan struct{})
		one sync.Once
	)
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	stop := start("test input", budget, w, func() { one.Do(func() { close(hit) }) })
	input(hit)
	stop()
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-hit:
		return true, out.String()
	default:
		return false, out.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestWatchdog(t *testing.T) {
	defer func(p time.Duration) { period = p }(period)
	period = 10 * time.Millisecond
	const budget = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		input func(stop <-chan struct{})
		fires bool
	}{
		// Waiting (a machine too busy to run the input) is not using the
		// budget: a wall-clock watchdog would fire here.
		{"waits past the budget", func(<-chan struct{}) { time.Sleep(3 * budget) }, false},
		{"quick", func(<-chan struct{}) {}, false},
		{"burns CPU", func(stop <-chan struct{}) { spin(stop, time.Minute) }, true},
		{"waits forever", func(stop <-chan struct{}) {
			select {
			case <-stop:
			case <-time.After(time.Minute):
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out := fired(t, budget, tc.input)
			if got != tc.fires {
				t.Fatalf("fired %v, want %v; output:\n%s", got, tc.fires, out)
			}
			if got && (!strings.HasPrefix(out, "test input: input still running after") || !strings.Contains(out, "goroutine ")) {
				t.Errorf("report without the input's name or the stacks:\n%s", out)
			}
		})
	}
}

// spin burns CPU until stop is closed or d has passed.
func spin(stop <-chan struct{}, d time.Duration) {
	end := time.Now().Add(d)
	for x := 0; time.Now().Before(end); x++ {
		select {
		case <-stop:
			return
		default:
		}
	}
}
