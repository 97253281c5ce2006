/* SwiftPM C targets need one source file; the LLVM C API comes from libLLVM. */
