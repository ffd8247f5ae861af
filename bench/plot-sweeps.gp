# bench/plot-sweeps.gp: the sweeps of make bench as a PNG (bench/run-bench.sh
# runs it): req/s per pool size (workers sweep) and the hits' and misses'
# req/s and cost per count of orders (rows sweep).
#
#   gnuplot -e "wfile='bench/out/workers.tsv'; rfile='bench/out/rows.tsv'; outfile='bench/out/sweeps.png'" bench/plot-sweeps.gp
#
# wfile: "workers case conns rps p50_ms p99_ms errors ratio", rfile: "rows
# case conns rps p50_ms p99_ms errors cost" (a header line, tab-separated);
# either may be '' (that sweep did not run).

if (!exists("wfile")) wfile = 'bench/out/workers.tsv'
if (!exists("rfile")) rfile = 'bench/out/rows.tsv'
if (!exists("outfile")) outfile = 'bench/out/sweeps.png'

wcases = "floor floor-redis count-hit id-hit miss post mixed-95/5"
rcases = "count-hit id-hit miss"
# a case's figure at one conns, NaN elsewhere: with "missing NaN" the
# points of one case are joined over the other lines
pick(c, n, col) = (strcol(2) eq c && column(3) == n) ? column(col) : NaN

panels = (wfile ne '' ? 2 : 0) + (rfile ne '' ? 2 : 0)
set terminal pngcairo size 1400,(panels > 2 ? 900 : 450) font ",10" noenhanced
set output outfile
set datafile separator "\t"
set datafile missing NaN
set style data linespoints
set key top left
set grid
set yrange [0:*]

set multiplot layout (panels > 2 ? 2 : 1),2 title "make bench: sweeps"
if (wfile ne '') {
  set logscale x 2
  set xlabel "workers"
  set ylabel "req/s"
  do for [n in "8 64"] {
    set title "workers sweep: req/s at ".n." connections"
    plot for [c in wcases] wfile skip 1 using 1:(pick(c, n + 0, 4)) title c
  }
  unset logscale x
}
if (rfile ne '') {
  set logscale x 10
  set format x "%.0e"
  set xlabel "orders"
  set ylabel "req/s"
  set title "rows sweep: req/s"
  plot for [c in rcases] for [n in "8 64"] rfile skip 1 using 1:(pick(c, n + 0, 4)) title c." @".n
  # id-hit is the unit (1): the other cases, on a log scale (a miss may
  # cost tens of hits)
  set logscale y 10
  set yrange [*:*]
  set ylabel "cost (id-hit's req/s over the case's)"
  set title "rows sweep: cost in id-hits, at the same connections"
  plot for [c in "count-hit miss"] for [n in "8 64"] rfile skip 1 using 1:(pick(c, n + 0, 8)) title c." @".n
}
unset multiplot
