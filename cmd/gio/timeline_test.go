package main

import (
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gio/commands"
)

// external finds anything in a page that could make a browser fetch
// something: URLs other than the SVG namespace, src/href attributes,
// CSS imports and url() other than a fragment.
var external = regexp.MustCompile(`https?://(?:[^w"]|w[^w]|ww[^w]|www[^.]|www\.[^w]|www\.w[^3])|\ssrc=|\shref=|@import|url\([^#]`)

// browserService matches the hosts Chromium calls by itself.
var browserService = regexp.MustCompile(`(^|\.)(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)$`)

// TestTimelineChromium renders the 077 overlapping race's timeline in
// headless Chromium: the page loads, paints something that is not blank,
// and asks for nothing over the network (Chromium's only proxy is a
// local server that counts requests other than Chromium's own calls
// home; the page itself has no URL to fetch and a CSP of default-src
// 'none').
// It skips when Chromium is not installed (.ci/run installs it).
func TestTimelineChromium(t *testing.T) {
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	dir := t.TempDir()
	_, tr := traceScript(t, filepath.Join(scriptsDir, "050-077-overlapping.gio"), "")
	tf := filepath.Join(dir, "t.json")
	page := filepath.Join(dir, "timeline.html")
	os.WriteFile(tf, tr, 0o644)
	if err := commands.ViewTrace(tf, page); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(page)
	if m := external.Find(html); m != nil {
		t.Errorf("the page refers to something outside itself: %q", m)
	}

	var requests atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Chromium's own services (component updater, clock, accounts)
		// call home whatever the page is; they are not the page's.
		host := r.URL.Hostname()
		if host == "" {
			host, _, _ = strings.Cut(r.Host, ":")
		}
		if browserService.MatchString(host) {
			t.Logf("chromium's own request, ignored: %s %s", r.Method, r.URL)
		} else {
			requests.Add(1)
			t.Logf("network request: %s %s", r.Method, r.URL)
		}
		http.Error(w, "no network in this test", http.StatusForbidden)
	}))
	defer proxy.Close()

	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
		"--proxy-server="+strings.TrimPrefix(proxy.URL, "http://"), "--proxy-bypass-list=<-loopback>",
		"--hide-scrollbars", "--window-size=1200,700", "--screenshot="+shot, "file://"+page)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colours, inked := paint(img)
	t.Logf("screenshot %v: %d colours, %.1f%% not white", img.Bounds().Size(), colours, 100*inked)
	if colours < 8 || inked < 0.05 {
		t.Errorf("the screenshot looks blank: %d colours, %.1f%% not white", colours, 100*inked)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the page made %d network requests", n)
	}
}

// paint counts an image's distinct colours and the share of pixels that
// are not white.
func paint(img image.Image) (int, float64) {
	seen := map[uint32]bool{}
	b := img.Bounds()
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				inked++
			}
		}
	}
	return len(seen), float64(inked) / float64(b.Dx()*b.Dy())
}
