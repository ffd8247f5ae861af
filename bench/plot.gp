# bench/plot.gp: the benchmark's figures as a PNG (bench/run-bench.sh runs
# it): req/s (top) and p99 latency (bottom) of each case at each connection
# count, one bar per repetition.
#
#   gnuplot -e "datafile='bench/out/results.tsv'; outfile='bench/out/bench.png'; reps=2" bench/plot.gp
#
# datafile: a header line, then "case@conns  rps1 .. rpsN  p99_1 .. p99_N"
# (tab-separated; floors: the floor round before that repetition).

if (!exists("datafile")) datafile = 'bench/out/results.tsv'
if (!exists("outfile")) outfile = 'bench/out/bench.png'
if (!exists("reps")) reps = 2

set terminal pngcairo size 1400,900 font ",10" noenhanced
set output outfile
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top right
set grid ytics
set xtics rotate by -35 scale 0
set yrange [0:*]

set multiplot layout 2,1 title "make bench: floors and service, ".reps." repetitions"
set title "throughput"
set ylabel "req/s"
plot for [r=1:reps] datafile skip 1 using (column(1+r)):xtic(1) title "repetition ".r
set title "latency, 99th percentile"
set ylabel "p99 ms"
plot for [r=1:reps] datafile skip 1 using (column(1+reps+r)):xtic(1) title "repetition ".r
unset multiplot
