package commands

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"gio/blk"
	"gio/internal/cvt"
	"gio/internal/getopt"

	"golang.org/x/sys/unix"
)

// qemu-img check on gio's block layer: "gio check" (CheckMain), the
// check command at the prompt (checkCmd) and CheckImage, the call for
// programs (gio explore, crash states). The checks themselves are the
// formats' (blk.Checker); this file opens, repairs and double-checks as
// img_check does, and prints its report.

// ErrNoCheck is CheckImage's error for an image whose format has no
// consistency check (qemu-img check's exit status 63).
var ErrNoCheck = errors.New("This image format does not support checks")

// CheckReport is what one qemu-img check run reports (ImageCheck).
type CheckReport struct {
	blk.CheckResult
	// Filename is the image as named by the caller, Format the format
	// driver's name ("qcow2").
	Filename, Format string
}

// CheckImage is qemu-img check FILE for programs: it opens file as
// qemu-img check does (format "" probes; read-only, or read/write when
// fix is not 0; blk.OpenFlags.Check), runs the format's check, and when
// something was repaired checks again without repairing and reports that
// second check with the first one's fixed counts, as qemu-img does. The
// check's messages (one problem a line, QEMU's words) go to msgs (nil:
// discarded). The image is closed before it returns.
//
// err is nil when the check completed; the report then says what is
// wrong: CheckStatus gives qemu-img check's exit status (0 clean, 2
// corruptions, 3 leaks only; 1 when CheckErrors is not 0). err wraps
// ErrNoCheck when the format has no check (63), and is any other error
// when the image could not be opened or the check could not complete
// (1). CheckImage uses the session's registry and loop, and must not be
// called from a request (it runs the loop).
func CheckImage(s *Session, file, format string, fix blk.CheckMode, msgs io.Writer) (CheckReport, error) {
	c := checkConfig{file: file, format: format, fix: fix}
	rep, _, err := checkFile(s, c, msgs)
	return rep, err
}

// CheckOpen checks the session's open image in place, as the check
// command does, without printing a report: what the caches hold is
// written first, the image stays open. It fails with ErrNoCheck as
// CheckImage does, and with EPERM for a repair of a read-only image.
// Note that a read/write open has already repaired a dirty image (lazy
// refcounts); CheckImage sees the file as it is.
func CheckOpen(s *Session, fix blk.CheckMode, msgs io.Writer) (CheckReport, error) {
	if s.Img == nil {
		return CheckReport{}, errors.New("no file open")
	}
	rep, _, err := checkBackend(s, s.Img, imageName(s.Img), fix, msgs)
	return rep, err
}

// CheckStatus is qemu-img check's exit status for CheckImage's answer.
func CheckStatus(rep CheckReport, err error) int {
	switch {
	case errors.Is(err, ErrNoCheck):
		return 63
	case err != nil || rep.CheckErrors != 0:
		return 1
	case rep.Corruptions != 0:
		return 2
	case rep.Leaks != 0:
		return 3
	}
	return 0
}

// checkConfig holds qemu-img check's options.
type checkConfig struct {
	file, format string
	fix          blk.CheckMode
	json, quiet  bool
	imageOpts    bool
	share        bool
}

// checkFile opens c.file, checks (and repairs) it and closes it. fixed
// is the first check's report when it repaired something (the caller
// prints the banner before the second report), else nil.
func checkFile(s *Session, c checkConfig, msgs io.Writer) (rep CheckReport, fixed *CheckReport, err error) {
	spec := blk.Spec{Format: c.format}
	if c.imageOpts {
		d, ok := s.ParseOptions(c.file)
		if !ok {
			return rep, nil, fmt.Errorf("invalid image options")
		}
		spec.Opts = d
	} else {
		spec.Filename = s.resolveScratch(c.file, nil)
	}
	spec.Flags.ReadOnly = c.fix == 0
	spec.Flags.Check = true
	spec.Flags.ForceShare = c.share
	if c.share && c.fix != 0 {
		return rep, nil, fmt.Errorf("Could not open '%s': force-share=on can only be used with read-only images", c.file)
	}
	img, err := s.Reg.Open(spec, s.Loop)
	if err != nil {
		return rep, nil, fmt.Errorf("Could not open '%s': %s", c.file, errText(err))
	}
	rep, fixed, err = checkBackend(s, img, c.file, c.fix, msgs)
	if cerr := img.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return rep, fixed, err
}

// checkBackend is collect_image_check with img_check's double check
// after a repair, on an open image.
func checkBackend(s *Session, img *blk.Backend, name string, fix blk.CheckMode, msgs io.Writer) (rep CheckReport, fixed *CheckReport, err error) {
	run := func(fix blk.CheckMode) (CheckReport, error) {
		r := CheckReport{Filename: name, Format: img.Root.Driver().Name}
		var cerr error
		err := s.Loop.RunSync("check", func(co *blk.Co) error {
			r.CheckResult, cerr = img.Check(co, fix, msgs)
			return nil
		})
		if err == nil {
			err = cerr
		}
		if errors.Is(err, unix.ENOTSUP) {
			return r, ErrNoCheck
		}
		return r, err
	}
	rep, err = run(fix)
	if err != nil || rep.CorruptionsFixed == 0 && rep.LeaksFixed == 0 {
		return rep, nil, err
	}
	first := rep
	rep, err = run(0)
	rep.CorruptionsFixed, rep.LeaksFixed = first.CorruptionsFixed, first.LeaksFixed
	return rep, &first, err
}

// writeCheckHuman is dump_human_image_check.
func writeCheckHuman(w io.Writer, r CheckReport) {
	if r.Corruptions == 0 && r.Leaks == 0 && r.CheckErrors == 0 {
		fmt.Fprintf(w, "No errors were found on the image.\n")
	} else {
		if r.Corruptions != 0 {
			fmt.Fprintf(w, "\n%d errors were found on the image.\n"+
				"Data may be corrupted, or further writes to the image may corrupt it.\n", r.Corruptions)
		}
		if r.Leaks != 0 {
			fmt.Fprintf(w, "\n%d leaked clusters were found on the image.\n"+
				"This means waste of disk space, but no harm to data.\n", r.Leaks)
		}
		if r.CheckErrors != 0 {
			fmt.Fprintf(w, "\n%d internal errors have occurred during the check.\n", r.CheckErrors)
		}
	}
	if r.TotalClusters != 0 && r.AllocatedClusters != 0 {
		a := float64(r.AllocatedClusters)
		fmt.Fprintf(w, "%d/%d = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
			r.AllocatedClusters, r.TotalClusters, a*100/float64(r.TotalClusters),
			float64(r.FragmentedClusters)*100/a, float64(r.CompressedClusters)*100/a)
	}
	if r.ImageEndOffset != 0 {
		fmt.Fprintf(w, "Image end offset: %d\n", r.ImageEndOffset)
	}
}

// writeCheckJSON is dump_json_image_check: QEMU's pretty JSON of an
// ImageCheck, whose keys come in the order of QDict's hash buckets (the
// order below), optional members only when not zero.
func writeCheckJSON(w io.Writer, r CheckReport) {
	type member struct {
		key      string
		v        any
		optional bool
	}
	ms := []member{
		{"image-end-offset", r.ImageEndOffset, true},
		{"compressed-clusters", r.CompressedClusters, true},
		{"total-clusters", r.TotalClusters, true},
		{"corruptions", int64(r.Corruptions), true},
		{"corruptions-fixed", int64(r.CorruptionsFixed), true},
		{"check-errors", int64(r.CheckErrors), false},
		{"leaks", int64(r.Leaks), true},
		{"leaks-fixed", int64(r.LeaksFixed), true},
		{"allocated-clusters", r.AllocatedClusters, true},
		{"filename", r.Filename, false},
		{"format", r.Format, false},
		{"fragmented-clusters", r.FragmentedClusters, true},
	}
	var lines []string
	for _, m := range ms {
		switch v := m.v.(type) {
		case int64:
			if m.optional && v == 0 {
				continue
			}
			lines = append(lines, fmt.Sprintf("    %q: %d", m.key, v))
		case string:
			lines = append(lines, fmt.Sprintf("    %q: %s", m.key, jsonString(v)))
		}
	}
	fmt.Fprintf(w, "{\n%s\n}\n", strings.Join(lines, ",\n"))
}

// jsonString quotes s as QEMU's JSON writer does (to_json): ", \ and
// control characters escaped, everything else as is.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// printCheck prints img_check's report: the banner after a repair
// (human only), then the report, unless quiet.
func printCheck(w io.Writer, c checkConfig, rep CheckReport, fixed *CheckReport) {
	if c.quiet {
		return
	}
	if fixed != nil && !c.json {
		fmt.Fprintf(w, "The following inconsistencies were found and repaired:\n\n"+
			"    %d leaked clusters\n    %d corruptions\n\nDouble checking the fixed image now...\n",
			fixed.LeaksFixed, fixed.CorruptionsFixed)
	}
	if c.json {
		writeCheckJSON(w, rep)
	} else {
		writeCheckHuman(w, rep)
	}
}

// checkArgs is the check command's synopsis at the prompt.
const checkArgs = "[-q] [-r leaks|all] [--output=human|json]"

const checkSynopsis = "check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename"

var checkLongOpts = []getopt.LongOpt{
	{Name: "help", Short: 'h'},
	{Name: "format", HasArg: true, Short: 'f'},
	{Name: "repair", HasArg: true, Short: 'r'},
	{Name: "output", HasArg: true, Short: 'o'},
	{Name: "image-opts", Short: 'I'},
	{Name: "force-share", Short: 'U'},
}

// parseCheck parses qemu-img check's options (img_check); prog prefixes
// the messages. ok is false when the command must stop with exit.
func parseCheck(prog string, out, errw io.Writer, args []string, wantFile bool) (c checkConfig, ok bool, exit int) {
	opts, pos, err := getopt.ParseLong(prog, args, "hf:r:qU", checkLongOpts)
	if err != nil {
		fmt.Fprintf(errw, "%s: %s\n", prog, benchGetoptMessage(err.Error(), args))
		if wantFile {
			fmt.Fprintf(errw, "Try '%s --help' for more information\n", prog)
		}
		return c, false, 1
	}
	for _, o := range opts {
		switch o.Name {
		case 'h':
			if wantFile {
				fmt.Fprintf(out, "%s\n", checkSynopsis)
			} else {
				fmt.Fprintf(out, "check %s\n", checkArgs)
			}
			return c, false, 0
		case 'f':
			c.format = o.Arg
		case 'r':
			switch o.Arg {
			case "leaks":
				c.fix = blk.CheckFixLeaks
			case "all":
				c.fix = blk.CheckFixLeaks | blk.CheckFixErrors
			default:
				fmt.Fprintf(errw, "%s: Unknown option value for -r (expecting 'leaks' or 'all'): %s\n", prog, o.Arg)
				if wantFile {
					fmt.Fprintf(errw, "Try '%s --help' for more information\n", prog)
				}
				return c, false, 1
			}
		case 'o':
			switch o.Arg {
			case "json":
				c.json = true
			case "human":
				c.json = false
			default:
				fmt.Fprintf(errw, "%s: --output must be used with human or json as argument.\n", prog)
				return c, false, 1
			}
		case 'q':
			c.quiet = true
		case 'U':
			c.share = true
		case 'I':
			c.imageOpts = true
		}
	}
	switch {
	case wantFile && len(pos) != 1:
		fmt.Fprintf(errw, "%s: Expecting one image file name\n", prog)
		fmt.Fprintf(errw, "Try '%s --help' for more information\n", prog)
		return c, false, 1
	case !wantFile && len(pos) != 0:
		fmt.Fprintf(errw, "%s: the open image is checked: no file name\n", prog)
		return c, false, 1
	case wantFile:
		c.file = pos[0]
	}
	return c, true, 0
}

// CheckMain is "gio check [qemu-img check options] FILE": qemu-img
// check's command line, output and exit status (0 clean, 1 check not
// completed, 2 corruptions, 3 leaked clusters only, 63 no check for this
// format), with the same messages (prefixed "qemu-img:", as gio bench's).
func CheckMain(s *Session, args []string) int {
	const prog = "qemu-img"
	c, ok, exit := parseCheck(prog, s.Out, s.Err, args, true)
	if !ok {
		return exit
	}
	// The drivers' error_report lines name qemu-img, as the rest does.
	s.Reg.ReportErr = func(err error) { fmt.Fprintf(s.Err, "%s: %s\n", prog, errText(err)) }
	rep, fixed, err := checkFile(s, c, s.Err)
	return finishCheck(s, prog, c, rep, fixed, err)
}

// finishCheck prints the report and the failure as img_check does and
// returns its exit status.
func finishCheck(s *Session, prog string, c checkConfig, rep CheckReport, fixed *CheckReport, err error) int {
	switch {
	case errors.Is(err, ErrNoCheck):
		s.Flush()
		fmt.Fprintf(s.Err, "%s: %s\n", prog, ErrNoCheck)
		return 63
	case err == nil:
		printCheck(s.Out, c, rep, fixed)
	}
	if err != nil || rep.CheckErrors != 0 {
		s.Flush()
		switch {
		case err == nil:
			fmt.Fprintf(s.Err, "%s: Check failed\n", prog)
		case strings.HasPrefix(err.Error(), "Could not open"):
			fmt.Fprintf(s.Err, "%s: %s\n", prog, err)
		default:
			fmt.Fprintf(s.Err, "%s: Check failed: %s\n", prog, cvt.Strerror(blk.ErrnoOf(err)))
		}
		return 1
	}
	return CheckStatus(rep, nil)
}

func checkCommands() []*Command {
	return []*Command{
		{Name: "check", Args: checkArgs,
			Oneline: "checks the open image's metadata as qemu-img check does (gio only)",
			Help: `
 checks the consistency of the open image's metadata (qcow2: refcounts
 against references, OFLAG_COPIED, misaligned or overlapping tables,
 leaked clusters) and prints qemu-img check's report. The problems go to
 stderr, one a line, in QEMU's words.
 -r leaks repairs leaked clusters, -r all every problem it can (the image
 must be writable); a repair is followed by a second check, as qemu-img
 check does. --output=json prints qemu-img check's JSON, -q nothing.
 The command fails when the check could not complete or found
 corruptions (so a script's "check" fails then); leaked clusters alone
 are no failure.
`,
			MinArgs: 0, MaxArgs: -1, NeedsFile: true, RawArgs: true, Hidden: true, Family: "image", Run: checkCmd},
	}
}

func checkCmd(s *Session, cmdName string, _ []getopt.Opt, args []string) error {
	c, ok, exit := parseCheck(cmdName, s.Out, s.Err, args, false)
	if !ok {
		if exit == 0 {
			return nil // -h
		}
		return errFailed
	}
	if c.fix != 0 && s.Img.ReadOnly() {
		s.errorReport("Block node is read-only")
		return errFailed
	}
	if c.fix != 0 {
		if err := s.Img.TakePerm(blk.PermWrite); err != nil {
			s.errorReport("%s", errText(err))
			return errFailed
		}
	}
	rep, fixed, err := checkBackend(s, s.Img, imageName(s.Img), c.fix, s.Err)
	if finishCheck(s, ProgName, c, rep, fixed, err) == 0 || CheckStatus(rep, err) == 3 {
		return nil
	}
	return errFailed
}

// imageName is the file an open image reads: the report names it
// (qemu-img names the image as typed).
func imageName(img *blk.Backend) string {
	name := img.Root.Filename()
	for n := img.Root; name == "" && n.File() != nil; n = n.File().Node {
		name = n.File().Node.Filename()
	}
	return name
}
