package main

import "io"

func cmdServe(args []string, stdout, stderr io.Writer) int { return 2 }
func cmdDemo(args []string, stdout, stderr io.Writer) int  { return 2 }
func cmdBench(args []string, stdout, stderr io.Writer) int { return 2 }
