module gio

go 1.26
