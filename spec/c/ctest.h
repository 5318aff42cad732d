/* Minimal C unit-test harness: CHECK records a failure and keeps going; main returns the count.
 * Each test file prints one line per check failure and ends with "N passed, N failed". */
#ifndef FSVC_CTEST_H
#define FSVC_CTEST_H
#include <stdio.h>
#include <math.h>

static int ctest_passed = 0, ctest_failed = 0;

#define CHECK(cond) do { if (cond) ctest_passed++; else { ctest_failed++; \
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double ca_ = (a), cb_ = (b); \
  if (fabs(ca_ - cb_) <= (tol)) ctest_passed++; else { ctest_failed++; \
  fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g (tol %g)\n", \
          __FILE__, __LINE__, #a, ca_, #b, cb_, (double)(tol)); } } while (0)
#define CTEST_SKIP(msg) do { printf("SKIP: %s\n", msg); } while (0)
#define CTEST_END() (printf("%d passed, %d failed\n", ctest_passed, ctest_failed), ctest_failed ? 1 : 0)
#endif
