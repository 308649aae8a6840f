//! The random bytes behind every token, code and link the server makes: the OS CSPRNG
//! (`getrandom`, through ring), fetched in batches into a per-thread buffer.

/// `N` bytes from the OS CSPRNG (the source of every token, code and link the server makes),
/// fetched [`RANDOM_BATCH`] bytes per system call into a per-thread buffer.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    RANDOM.with_borrow_mut(|pool| pool.take(&mut bytes));
    bytes
}

/// Bytes of OS randomness fetched per `getrandom` call: one call serves 16 tokens, where a
/// call per token cost about a microsecond of a token request.
const RANDOM_BATCH: usize = 512;

thread_local! {
    static RANDOM: std::cell::RefCell<RandomPool> = const {
        std::cell::RefCell::new(RandomPool { buf: [0; RANDOM_BATCH], used: RANDOM_BATCH })
    };
}

/// OS random bytes not yet handed out: `buf[used..]`. Each byte is handed out once and zeroed
/// in the buffer as it is, so the buffer never holds a value already given to a caller.
struct RandomPool {
    buf: [u8; RANDOM_BATCH],
    used: usize,
}

impl RandomPool {
    fn take(&mut self, out: &mut [u8]) {
        use ring::rand::{SecureRandom, SystemRandom};
        if out.len() > RANDOM_BATCH {
            SystemRandom::new().fill(out).expect("OS random source");
            return;
        }
        if RANDOM_BATCH - self.used < out.len() {
            SystemRandom::new().fill(&mut self.buf).expect("OS random source");
            self.used = 0;
        }
        let taken = &mut self.buf[self.used..self.used + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        self.used += out.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_fetched_byte_once_and_zeroes_it() {
        let mut pool = RandomPool {
            buf: [0; RANDOM_BATCH],
            used: RANDOM_BATCH,
        };
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        pool.take(&mut a);
        pool.take(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
        assert_eq!(pool.used, 64);
        assert!(
            pool.buf[..64].iter().all(|&x| x == 0),
            "handed-out bytes stay in the buffer"
        );
    }

    #[test]
    fn refills_when_the_rest_is_too_short_and_serves_large_requests_directly() {
        let mut pool = RandomPool {
            buf: [0; RANDOM_BATCH],
            used: RANDOM_BATCH - 8,
        };
        let mut token = [0u8; 32];
        pool.take(&mut token);
        assert_ne!(token, [0; 32], "eight zero bytes left must not be handed out");
        assert_eq!(pool.used, 32);
        let mut large = [0u8; RANDOM_BATCH + 1];
        pool.take(&mut large);
        assert_eq!(pool.used, 32);
        assert!(large.iter().any(|&x| x != 0));
    }

    #[test]
    fn threads_get_different_bytes() {
        let here = random_bytes::<32>();
        let there = std::thread::spawn(random_bytes::<32>).join().unwrap();
        assert_ne!(here, there);
        assert_ne!(random_bytes::<32>(), here);
    }
}
