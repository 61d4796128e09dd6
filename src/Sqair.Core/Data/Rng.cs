namespace Sqair.Data;

/// <summary>
/// xoshiro256** seeded through SplitMix64. We use our own generator rather than System.Random so
/// that datasets are the same bytes on every .NET version and platform, and so that each sequence
/// can have an independent stream derived from (seed, stream index): that is what makes parallel
/// generation identical whatever the thread count.
/// </summary>
internal sealed class Rng
{
    ulong _s0, _s1, _s2, _s3;
    double? _spareNormal;

    public Rng(ulong seed, ulong stream = 0)
    {
        ulong x = seed ^ (0x9E3779B97F4A7C15UL * (stream + 1));
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    /// <summary>Uniform integer in [lo, hi] inclusive (Lemire's unbiased method).</summary>
    public int NextInt(int lo, int hi)
    {
        if (hi < lo) throw new ArgumentOutOfRangeException(nameof(hi), $"empty range [{lo}, {hi}]");
        ulong range = (ulong)((long)hi - lo + 1);
        ulong threshold = (0UL - range) % range;
        while (true)
        {
            ulong r = NextULong();
            ulong high = Math.BigMul(r, range, out ulong low);
            if (low >= threshold) return (int)(lo + (long)high);
        }
    }

    /// <summary>
    /// Standard normal by the polar Box–Muller method (deterministic, no libm differences beyond log/sqrt).
    /// </summary>
    public double Normal()
    {
        if (_spareNormal is double spare) { _spareNormal = null; return spare; }
        double u, v, s;
        do
        {
            u = 2 * NextDouble() - 1;
            v = 2 * NextDouble() - 1;
            s = u * u + v * v;
        } while (s >= 1 || s == 0);
        double f = Math.Sqrt(-2 * Math.Log(s) / s);
        _spareNormal = v * f;
        return u * f;
    }

    public double Normal(double mean, double std) => mean + std * Normal();

    /// <summary>Fisher–Yates shuffle of 0..n-1.</summary>
    public int[] Permutation(int n)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = NextInt(0, i);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
