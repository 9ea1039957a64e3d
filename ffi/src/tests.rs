//! Tests of the C ABI, calling the `extern "C"` functions as a C program would.
