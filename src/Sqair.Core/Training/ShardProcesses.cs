using System.Diagnostics;
using Sqair.Data;
using Sqair.Model;
using Sqair.Native;
using Sqair.Objective;
using static TorchSharp.torch;

namespace Sqair.Training;

/// <summary>
/// The main process's side of <see cref="ShardWorker"/>: one worker process per shard after the first, started
/// with the run and stopped with it. Each step writes the parameters and a worker's part of the batch into its
/// shared region and sends the step (<see cref="Send"/>); after the main process's own shard, <see cref="Receive"/>
/// waits for every answer and adds the workers' gradients into the parameters' own.
/// </summary>
internal sealed class ShardProcesses : IDisposable
{
    /// <summary>How many lines of a worker's standard error an error message quotes at most.</summary>
    const int ErrorLinesKept = 5;

    /// <summary>
    /// How long a worker may be silent before it counts as stuck: a step takes seconds even at 10 frames on one
    /// thread, and starting a worker (the runtime, libtorch, the model) well under a minute, so ten minutes of
    /// silence is a worker that will not answer, not a slow one. A stuck worker would otherwise hold the run forever.
    /// </summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromMinutes(10);

    readonly List<Worker> workers = [];
    readonly IReadOnlyList<Tensor> parameters;
    // Set at a worker's first failure: the workers are then out of step (answers unread, a read still pending),
    // so every later step is refused rather than fed another step's answers.
    IOException? failure;
    readonly long parameterBytes;
    readonly int maxSeqLen;

    /// <summary>
    /// Starts <paramref name="count"/> workers for <paramref name="model"/>'s config and parameters, each with
    /// <paramref name="threadsEach"/> libtorch threads, from <paramref name="launch"/>; a worker silent for
    /// <paramref name="answerTimeout"/> (default <see cref="AnswerTimeout"/>) is stopped and is an error.
    /// </summary>
    public ShardProcesses(SqairModel model, int count, int threadsEach, Func<ProcessStartInfo> launch,
                          TimeSpan? answerTimeout = null)
    {
        parameters = [.. model.parameters()];
        parameterBytes = parameters.Sum(p => p.ElementSize * p.numel());
        maxSeqLen = model.Config.SeqLen;
        var hello = new ShardHello(model.Config.ToJson(), parameters[0].device.ToString(), threadsEach);
        var expected = ShardReady.Describe(model);
        try
        {
            for (int i = 0; i < count; i++)
                workers.Add(Worker.Start(launch(), hello, expected, answerTimeout ?? AnswerTimeout));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Worker processes.</summary>
    public int Count => workers.Count;

    /// <summary>The workers' process ids.</summary>
    public IReadOnlyList<int> ProcessIds => [.. workers.Select(w => w.Id)];

    /// <summary>
    /// Sends shard i + 1's step to worker i: <paramref name="parts"/>[i], its weight and seed, the model's
    /// presence temperature <paramref name="temperature"/>, K = <paramref name="k"/>, and whether to
    /// <paramref name="measure"/> its part.
    /// </summary>
    public void Send(IReadOnlyList<SequenceBatch> parts, IReadOnlyList<double> weights, IReadOnlyList<ulong> seeds,
                     int k, double temperature, bool measure)
        => Guarded(() => SendAll(parts, weights, seeds, k, temperature, measure));

    void SendAll(IReadOnlyList<SequenceBatch> parts, IReadOnlyList<double> weights, IReadOnlyList<ulong> seeds,
                 int k, double temperature, bool measure)
    {
        for (int i = 0; i < workers.Count; i++)
        {
            var w = workers[i];
            long batchBytes = ShardLayout.Bytes(parts[i]);
            ShardRegion? fresh = null;
            if (w.Region is null || w.Region.Length < 2 * parameterBytes + batchBytes)
            {
                // Room for the longest window at once (frames grow with the curriculum), so this happens once.
                long room = 2 * parameterBytes + batchBytes * Math.Max(1, maxSeqLen / parts[i].T + 1);
                w.Replace(SharedRegion.Create(room));
                fresh = new ShardRegion(w.Region!.Path, w.Region.Length);
            }
            var region = w.Region!;
            ShardLayout.WriteParameters(region, parameters, 0);
            var batch = ShardLayout.WriteBatch(region, parts[i], 2 * parameterBytes);
            w.Send(new ShardStep(k, weights[i], seeds[i], temperature, parameterBytes, batch, fresh, measure));
            w.Sent();
        }
    }

    /// <summary>
    /// Every worker's answer to the step sent last, its gradients added into the parameters' (when its loss is
    /// finite). A worker that ended, answered out of turn or stayed silent too long is an <see cref="IOException"/>
    /// naming what it printed.
    /// </summary>
    /// <remarks>
    /// Only the workers a step was sent to are read, so a <see cref="Send"/> that failed part-way leaves every
    /// worker in step.
    /// </remarks>
    public IReadOnlyList<ShardDone> Receive()
    {
        var answers = new List<ShardDone>();
        Guarded(() =>
        {
            using var scope = NewDisposeScope();
            foreach (var w in workers.Where(w => w.Pending))
            {
                var done = w.Receive();
                if (double.IsFinite(done.Loss))
                    ShardLayout.AddGradients(w.Region!, parameters, parameterBytes, done.HasGradient);
                answers.Add(done);
            }
        });
        return answers;
    }

    /// <summary>
    /// Runs one exchange with the workers unless an earlier one failed: a failed exchange leaves them out of step,
    /// so its error is kept and every later exchange refuses with it.
    /// </summary>
    void Guarded(Action exchange)
    {
        if (failure is not null)
            throw new IOException($"the shard workers stopped at an earlier error: {failure.Message}", failure);
        try { exchange(); }
        catch (IOException e)
        {
            failure = e;
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var w in workers) w.Dispose();
        workers.Clear();
    }

    /// <summary>One worker process, its pipes and its shared region.</summary>
    sealed class Worker : IDisposable
    {
        readonly Process process;
        readonly TimeSpan answerTimeout;
        readonly Queue<string> errorTail = new();
        bool unlinkPending;

        public SharedRegion? Region { get; private set; }

        /// <summary>Whether a step was sent and its answer not read yet.</summary>
        public bool Pending { get; private set; }

        public int Id => process.Id;

        Worker(Process process, TimeSpan answerTimeout)
        {
            this.process = process;
            this.answerTimeout = answerTimeout;
        }

        /// <summary>
        /// Starts a worker and checks that its model's parameters are <paramref name="expected"/> (names, shapes and
        /// element types in order: the bytes of each step land in the tensors they were read from).
        /// </summary>
        public static Worker Start(ProcessStartInfo info, ShardHello hello, string[] expected, TimeSpan answerTimeout)
        {
            info.RedirectStandardInput = info.RedirectStandardOutput = info.RedirectStandardError = true;
            info.UseShellExecute = false;
            var process = Process.Start(info)
                          ?? throw new IOException($"could not start the shard worker {info.FileName}");
            var w = new Worker(process, answerTimeout);
            process.ErrorDataReceived += (_, e) => w.KeepError(e.Data);
            process.BeginErrorReadLine();
            try
            {
                w.Send(hello);
                var ready = w.ReadLine<ShardReady>();
                if (FirstDifference(ready.Parameters ?? [], expected) is { } difference)
                    throw new IOException($"the shard worker's model differs from this process's: {difference}");
                return w;
            }
            catch
            {
                w.Dispose();
                throw;
            }
        }

        /// <summary>Uses <paramref name="region"/> from the next step on.</summary>
        public void Replace(SharedRegion region)
        {
            Region?.Unlink();
            Region?.Dispose();
            Region = region;
            unlinkPending = true;
        }

        public void Send<T>(T message)
        {
            try { ShardProtocol.Write(process.StandardInput, message); }
            catch (IOException) { throw Ended(); }
        }

        public void Sent() => Pending = true;

        public ShardDone Receive()
        {
            Pending = false;
            var done = ReadLine<ShardDone>();
            // The worker has mapped the region by now: its name can go.
            if (unlinkPending) Region?.Unlink();
            unlinkPending = false;
            return done;
        }

        /// <summary>Where the worker's parameters differ from this process's, or null when they agree.</summary>
        static string? FirstDifference(string[] theirs, string[] ours)
        {
            for (int i = 0; i < Math.Min(theirs.Length, ours.Length); i++)
                if (theirs[i] != ours[i]) return $"parameter {i} is {theirs[i]} there, {ours[i]} here";
            return theirs.Length == ours.Length ? null : $"{theirs.Length} parameters there, {ours.Length} here";
        }

        /// <summary>The next protocol line as a <typeparamref name="T"/>, passing over anything else printed.</summary>
        T ReadLine<T>() where T : class
        {
            // One deadline for the answer, not one per line: a worker that only prints warnings is not answering.
            var waited = Stopwatch.StartNew();
            while (NextLine(answerTimeout - waited.Elapsed) is { } line)
            {
                if (!line.StartsWith(ShardProtocol.Prefix, StringComparison.Ordinal))
                {
                    KeepError(line);
                    continue;
                }
                return ShardProtocol.Read<T>(line)
                       ?? throw new IOException($"the shard worker answered out of turn: {line}");
            }
            throw Ended();
        }

        /// <summary>
        /// The worker's next line of output (null at its end); a worker that gives none within
        /// <paramref name="wait"/> is stopped (its read stays pending, which is why a failed
        /// <see cref="ShardProcesses"/> refuses every later step).
        /// </summary>
        string? NextLine(TimeSpan wait)
        {
            var read = process.StandardOutput.ReadLineAsync();
            try
            {
                if (!read.Wait(wait > TimeSpan.Zero ? wait : TimeSpan.Zero)) throw Silent();
            }
            catch (AggregateException)
            {
                throw Ended();   // the pipe failed: the worker is gone
            }
            return read.Result;
        }

        void KeepError(string? line)
        {
            if (string.IsNullOrWhiteSpace(line)) return;
            lock (errorTail)
            {
                errorTail.Enqueue(line);
                if (errorTail.Count > ErrorLinesKept) errorTail.Dequeue();
            }
        }

        IOException Silent()
        {
            // It may have ended meanwhile, or not be killable: the error below is what matters either way.
            try { process.Kill(entireProcessTree: true); }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception
                                          or AggregateException)
            {
            }
            return new IOException($"the shard worker process {process.Id} gave no answer in " +
                                   $"{answerTimeout.TotalSeconds:0.#} s and was stopped{Said()}");
        }

        /// <summary>The last lines the worker wrote to standard error, as the end of a message.</summary>
        string Said()
        {
            lock (errorTail) return errorTail.Count > 0 ? ": " + string.Join(" | ", errorTail) : "";
        }

        IOException Ended()
        {
            // Once it has exited, the argument-less wait also lets the last lines of standard error arrive.
            if (process.WaitForExit(TimeSpan.FromSeconds(5))) process.WaitForExit();
            string code = process.HasExited ? $"exit code {process.ExitCode}" : "still running";
            return new IOException($"the shard worker process {process.Id} stopped answering ({code}){Said()}");
        }

        public void Dispose()
        {
            try
            {
                process.StandardInput.Close();
                if (!process.WaitForExit(TimeSpan.FromSeconds(10))) process.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException) { }
            process.Dispose();
            Region?.Unlink();
            Region?.Dispose();
            Region = null;
        }
    }
}
