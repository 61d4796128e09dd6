using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Sqair.Tests;

/// <summary>
/// Runs work while another thread allocates and forces garbage collections the whole time, so that any
/// TorchSharp temporary a native call still reads but nothing keeps alive gets finalized under it.
/// </summary>
static class GcStress
{
    /// <summary>
    /// Runs <paramref name="round"/> (given its number) for <c>SQAIR_STRESS_SECONDS</c> (default 8) and at least
    /// <paramref name="minRounds"/> times, so that a busy machine gives the race its chances too and cannot fail
    /// the test by being slow. Returns the rounds run and libtorch's first error (null: none).
    /// </summary>
    public static (int Rounds, string? Failure) Run(int minRounds, int collectEvery, Action<int> round)
    {
        var seconds = double.TryParse(Environment.GetEnvironmentVariable("SQAIR_STRESS_SECONDS"), out var s) ? s : 8;
        using var stop = new CancellationTokenSource();
        var noise = new Thread(() =>
        {
            var keep = new object[64];
            for (long i = 0; !stop.IsCancellationRequested; i++)
            {
                keep[i % keep.Length] = new byte[1024];
                if (i % collectEvery == 0) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            }
        })
        { IsBackground = true };
        noise.Start();
        var clock = Stopwatch.StartNew();
        int rounds = 0;
        try
        {
            while (clock.Elapsed.TotalSeconds < seconds || rounds < minRounds) round(rounds++);
        }
        catch (ExternalException e) { return (rounds, e.Message.Split('\n')[0] + " at " + e.StackTrace); }
        finally { stop.Cancel(); noise.Join(); }
        return (rounds, null);
    }
}
