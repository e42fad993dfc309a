package qcow2

import (
	"gio/blk"

	"golang.org/x/sys/unix"
)

// External data files (incompatible bit 2): guest data lives in a
// separate file, the "data-file" child, at the guest offset itself; the
// qcow2 file holds only metadata. Data clusters have no refcounts: they
// are neither allocated from nor freed to the refcount structures, and
// the metadata overlap checks do not apply to them. The image names its
// data file in a header extension; the data-file option overrides it.
// With data-file-raw (autoclear bit 1) the data file is also a valid raw
// image of the guest disk.

// hasDataFile says whether guest data lives in an external data file (the
// header says so; once open, s.data is that file).
func (s *state) hasDataFile() bool { return s.incompat&incompatDataFile != 0 }

// dataOverlapCheck is the overlap check of a data write: none for an
// external data file, which holds no metadata.
func (s *state) dataOverlapCheck(host, n int64) error {
	if s.hasDataFile() {
		return nil
	}
	return s.overlapCheck(0, host, n)
}

// openDataFile attaches the data file after the header has been read
// (qcow2_do_open): the data-file option, else the name the image records.
func (s *state) openDataFile(a *blk.OpenArgs) error {
	given := a.Opts.Has("data-file") || a.Opts.HasPrefix("data-file")
	if given {
		// The option's file is opened first, whatever the header says.
		c, err := a.OpenChild("data-file", false, true)
		if err != nil {
			return err
		}
		if s.incompat&incompatDataFile == 0 {
			return blk.Msgf(unix.EINVAL, "'data-file' can only be set for images with an external data file")
		}
		s.data = c
		return nil
	}
	if s.incompat&incompatDataFile == 0 {
		if s.autoclear&autoclearDataFileRaw != 0 {
			return blk.Msgf(unix.EINVAL, "data-file-raw requires a data file")
		}
		s.data = s.file
		return nil
	}
	if s.dataFileName == "" {
		return blk.Msgf(unix.EINVAL, "'data-file' is required for this image")
	}
	a.Opts.Set("data-file.filename", s.dataFileName)
	c, err := a.OpenChild("data-file", false, true)
	if err != nil {
		return err
	}
	s.data = c
	return nil
}

// freeDataCluster drops a data cluster of an external data file: no
// refcount, a discard of the data file when the reason asks for it
// (qcow2_free_any_cluster).
func (s *state) freeDataCluster(co *blk.Co, off int64, typ discardType) {
	if s.discardPassthrough[typ] {
		_ = s.data.Node.PDiscard(co, off, s.clusterSize)
	}
}

// dataFileLen is the data file's length, or 0 when it cannot be read.
func (s *state) dataFileLen(co *blk.Co) int64 {
	l, err := s.data.Node.Length(co)
	if err != nil {
		return 0
	}
	return l
}
